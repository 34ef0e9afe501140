//! The admin HTTP API: reports from vantage points, status ("why is this the
//! answer?"), metrics, liveness and readiness, operator overrides.
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/v1/reports` | a signed report from a vantage point |
//! | GET | `/v1/state` | decided states, signed (peers starting cold ask this) |
//! | GET | `/v1/health` | decided state per endpoint |
//! | PUT | `/v1/endpoints/{pool}/{name}/force` | override an endpoint (loopback clients only) |
//! | GET | `/status` | endpoints, votes, pools, records and their answers |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/healthz`, `/readyz` | liveness, readiness |

pub mod api;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;

use self::api::{ForceRequest, HealthView, Status};
use crate::health::report::{
    CHALLENGE_HEADER, ERROR_HEADER, ReportError, SIGNATURE_HEADER, VANTAGE_HEADER,
};
use crate::model::HealthState;

/// What the admin API needs from the running service.
#[async_trait::async_trait]
pub trait AdminBackend: Send + Sync + 'static {
    /// Authenticates and applies a report; also returns the current challenge.
    async fn submit_report(
        &self,
        body: Bytes,
        vantage: Option<String>,
        signature: Option<String>,
    ) -> (Result<(), ReportError>, String);
    /// Sets or clears an operator override of `pool/name`.
    async fn force(&self, endpoint: String, state: Option<HealthState>) -> Result<(), String>;
    /// Current status.
    fn status(&self) -> Arc<Status>;
    /// Decided state per endpoint.
    fn health(&self) -> HealthView;
    /// Signed decided states (body, signature) echoing `nonce`, if this server has a
    /// vantage secret.
    fn peer_state(&self, nonce: String) -> Option<(Vec<u8>, String)>;
    /// Prometheus text.
    fn metrics(&self) -> String;
    /// Whether start-up is complete.
    fn ready(&self) -> bool;
}

/// Errors of the admin server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

type Backend = Arc<dyn AdminBackend>;

/// Binds the admin listener; returns the bound address and the serving future.
pub async fn bind(
    addr: SocketAddr,
    backend: Backend,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send + 'static), AdminError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    let app = router(backend);
    let serve = async move {
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
        if let Err(error) = result {
            tracing::error!(%error, "admin API stopped");
        }
    };
    Ok((bound, serve))
}

fn router(backend: Backend) -> Router {
    Router::new()
        .route("/v1/reports", post(submit_report))
        .route("/v1/state", get(peer_state))
        .route("/v1/health", get(health))
        .route("/v1/endpoints/{pool}/{name}/force", put(force))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(backend)
}

async fn submit_report(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (result, challenge) = backend
        .submit_report(body, header(VANTAGE_HEADER), header(SIGNATURE_HEADER))
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

/// `GET /v1/state?nonce=…`.
#[derive(serde::Deserialize)]
struct StateQuery {
    #[serde(default)]
    nonce: String,
}

async fn peer_state(
    State(backend): State<Backend>,
    axum::extract::Query(query): axum::extract::Query<StateQuery>,
) -> Response {
    match backend.peer_state(query.nonce) {
        Some((body, signature)) => (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (header::HeaderName::from_static(SIGNATURE_HEADER), signature),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "this server has no vantage secret\n").into_response(),
    }
}

async fn health(State(backend): State<Backend>) -> Response {
    axum::Json(backend.health()).into_response()
}

async fn status(State(backend): State<Backend>) -> Response {
    axum::Json(backend.status().as_ref().clone()).into_response()
}

async fn metrics(State(backend): State<Backend>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        backend.metrics(),
    )
        .into_response()
}

async fn ready(State(backend): State<Backend>) -> Response {
    if backend.ready() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn force(
    State(backend): State<Backend>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((pool, name)): Path<(String, String)>,
    axum::Json(request): axum::Json<ForceRequest>,
) -> Response {
    if !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "overrides are accepted from loopback clients only\n",
        )
            .into_response();
    }
    match backend.force(format!("{pool}/{name}"), request.state).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => (StatusCode::NOT_FOUND, format!("{message}\n")).into_response(),
    }
}
