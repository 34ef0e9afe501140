//! Who may call what: bearer tokens with a role, compared in constant time.
//!
//! - With `[[admin.tokens]]`, every call needs a token (`Authorization: Bearer …`)
//!   except the public ones (`[admin] public`, by default `healthz` and `readyz`);
//!   changes need an `operate` token. A missing or unknown token gets 401, a `read`
//!   token on a change 403.
//! - Without tokens, reads are open and changes are taken from loopback clients only
//!   (the behaviour before tokens existed).
//! - Reports, peer state and override sync are signed by vantage secrets instead.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AdminAccess, AdminRole, PublicPath};

/// The access rules in force (swapped on reload).
pub(crate) type SharedAccess = Arc<ArcSwap<AdminAccess>>;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// Token name (`anonymous` without tokens).
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
}

/// What a call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Reading; open without a token if the path is public.
    Read(Option<PublicPath>),
    /// Changing.
    Operate,
}

/// Why a call is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or an unknown one.
    Unauthenticated(&'static str),
    /// A token without the role, or a change from beyond loopback without tokens.
    Forbidden(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(why) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"failoverd\"")],
                format!("{why}\n"),
            )
                .into_response(),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, format!("{why}\n")).into_response(),
        }
    }
}

/// Decides a call (pure): `bearer` is the token presented, `peer` the client.
pub(crate) fn authorize(
    access: &AdminAccess,
    need: Need,
    bearer: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<Caller, Refusal> {
    if access.tokens.is_empty() {
        let loopback = peer.is_some_and(|p| p.ip().is_loopback());
        if need == Need::Operate && !loopback {
            return Err(Refusal::Forbidden(
                "changes are taken from loopback clients only unless [[admin.tokens]] are configured",
            ));
        }
        return Ok(Caller {
            name: "anonymous".to_owned(),
            role: AdminRole::Operate,
        });
    }
    if let Need::Read(Some(path)) = need {
        if access.public.contains(&path) {
            return Ok(Caller {
                name: "public".to_owned(),
                role: AdminRole::Read,
            });
        }
    }
    let Some(bearer) = bearer else {
        return Err(Refusal::Unauthenticated("a bearer token is needed"));
    };
    let digest: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
    // Every token is compared, in constant time, whichever matches.
    let mut found: Option<&crate::config::AdminToken> = None;
    for token in &access.tokens {
        if bool::from(token.digest.ct_eq(&digest)) {
            found = Some(token);
        }
    }
    let token = found.ok_or(Refusal::Unauthenticated("unknown token"))?;
    if need == Need::Operate && token.role < AdminRole::Operate {
        return Err(Refusal::Forbidden("this token may only read"));
    }
    Ok(Caller {
        name: token.name.clone(),
        role: token.role,
    })
}

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn check<S>(parts: &Parts, state: &S, need: Need) -> Result<Caller, Refusal>
where
    SharedAccess: FromRef<S>,
{
    let access = SharedAccess::from_ref(state);
    let peer = parts
        .extensions
        .get::<ConnectInfo<super::Peer>>()
        .map(|c| c.0.0);
    authorize(&access.load(), need, bearer(parts), peer)
}

/// Extractor: a caller allowed to read (`P`: the public path it is, if any).
pub(crate) struct Reader<const P: u8 = NOT_PUBLIC>(
    #[expect(
        dead_code,
        reason = "never read (found by the issue 22 pub(crate) sweep): use it or remove it"
    )]
    pub Caller,
);

/// Extractor: a caller allowed to change things.
pub(crate) struct Operator(pub Caller);

/// `P` of [`Reader`] for paths that are never public.
pub(crate) const NOT_PUBLIC: u8 = u8::MAX;

fn public_path(p: u8) -> Option<PublicPath> {
    PublicPath::ALL.get(usize::from(p)).map(|(_, path)| *path)
}

impl<S, const P: u8> FromRequestParts<S> for Reader<P>
where
    S: Send + Sync,
    SharedAccess: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check(parts, state, Need::Read(public_path(P))).map(Reader)
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    SharedAccess: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check(parts, state, Need::Operate).map(Operator)
    }
}

/// [`Reader`] parameters of the public paths, in [`PublicPath::ALL`] order.
pub(crate) mod public {
    /// `/metrics`.
    pub(crate) const METRICS: u8 = 0;
    /// `/healthz`.
    pub(crate) const HEALTHZ: u8 = 1;
    /// `/readyz`.
    pub(crate) const READYZ: u8 = 2;
    /// `/status`.
    pub(crate) const STATUS: u8 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminToken;

    fn access() -> AdminAccess {
        let token = |name: &str, role, secret: &str| AdminToken {
            name: name.into(),
            role,
            digest: Sha256::digest(secret.as_bytes()).into(),
        };
        AdminAccess {
            tokens: vec![
                token("viewer", AdminRole::Read, "read-token-0123456789"),
                token("oncall", AdminRole::Operate, "operate-token-0123456789"),
            ],
            public: vec![PublicPath::Healthz],
            hosts: Vec::new(),
        }
    }

    const REMOTE: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9)),
        5000,
    ));

    #[test]
    fn tokens_and_roles() {
        let a = access();
        let read = Need::Read(None);
        assert_eq!(
            authorize(&a, read, None, REMOTE),
            Err(Refusal::Unauthenticated("a bearer token is needed"))
        );
        assert_eq!(
            authorize(&a, read, Some("nope-nope-nope-nope"), REMOTE),
            Err(Refusal::Unauthenticated("unknown token"))
        );
        assert_eq!(
            authorize(&a, read, Some("read-token-0123456789"), REMOTE).map(|c| c.name),
            Ok("viewer".to_owned())
        );
        assert_eq!(
            authorize(&a, Need::Operate, Some("read-token-0123456789"), REMOTE),
            Err(Refusal::Forbidden("this token may only read"))
        );
        assert!(authorize(&a, Need::Operate, Some("operate-token-0123456789"), REMOTE).is_ok());
        // Public paths need no token; others still do, even from loopback.
        assert!(authorize(&a, Need::Read(Some(PublicPath::Healthz)), None, REMOTE).is_ok());
        assert!(authorize(&a, Need::Read(Some(PublicPath::Metrics)), None, REMOTE).is_err());
    }

    #[test]
    fn without_tokens_changes_come_from_loopback_only() {
        let open = AdminAccess::default();
        let local = Some("127.0.0.1:4000".parse().unwrap());
        assert!(authorize(&open, Need::Read(None), None, REMOTE).is_ok());
        assert!(authorize(&open, Need::Operate, None, local).is_ok());
        assert!(matches!(
            authorize(&open, Need::Operate, None, REMOTE),
            Err(Refusal::Forbidden(_))
        ));
    }
}
