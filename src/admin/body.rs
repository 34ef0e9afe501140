//! Strict JSON request bodies: an unknown field, a missing one or a wrong type gets
//! 400 with serde's message (never a silent default, never axum's 422).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Largest body taken (bytes).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A JSON body of `T` (whose serde derive should deny unknown fields).
pub(crate) struct Strict<T>(pub T);

/// A rejected body.
pub(crate) struct BadBody(pub String);

impl IntoResponse for BadBody {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("{}\n", self.0)).into_response()
    }
}

impl<S, T> FromRequest<S> for Strict<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = BadBody;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| BadBody(format!("cannot read the body: {e}")))?;
        if body.len() > MAX_BODY {
            return Err(BadBody(format!("body over {MAX_BODY} bytes")));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BadBody("a JSON body is needed".to_owned()));
        }
        serde_json::from_slice(&body)
            .map(Strict)
            .map_err(|e| BadBody(format!("invalid body: {e}")))
    }
}
