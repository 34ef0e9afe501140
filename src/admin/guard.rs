//! Requests a browser could be tricked into sending never change anything.
//!
//! - **Host** (DNS rebinding): a request must name the server by an address, by
//!   `localhost`, by this host's name, by a name in `[health] servers` or by one of
//!   `[admin] names`. A page on `evil.example` whose name was made to resolve to this
//!   server names `evil.example` and is refused. Liveness, readiness and metrics are
//!   exempt (load balancers and scrapers use names of their own).
//! - **Changes** (every method but GET and HEAD) need `Content-Type:
//!   application/json`, which a cross-site page can only send after a CORS preflight
//!   this server never grants, and are refused when the browser says the request is
//!   cross-site (`Origin` of another host, or `Sec-Fetch-Site: cross-site`).
//!
//! Both refusals are 403 or 415 with the reason, before any handler runs.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::SharedAccess;

/// Paths whose callers may name the server as they like.
const ANY_HOST: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Why a request is refused (pure, for tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The `Host` is not a name of this server.
    Host(String),
    /// The request comes from another site.
    CrossSite(String),
    /// A change without a JSON content type.
    ContentType,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Host(host) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not a name of this server; add it to [admin] names to use it\n"
                ),
            )
                .into_response(),
            Self::CrossSite(origin) => (
                StatusCode::FORBIDDEN,
                format!("cross-site request refused (origin {origin:?})\n"),
            )
                .into_response(),
            Self::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "changes need Content-Type: application/json\n",
            )
                .into_response(),
        }
    }
}

/// Whether `host` (from [`host_of`]) names this server.
fn known_host(host: &str, names: &[String], own_name: Option<&str>) -> bool {
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || own_name.is_some_and(|own| {
            host == own || own.split('.').next().is_some_and(|short| host == short)
        })
        || names.iter().any(|n| n == host)
}

/// Decides a request (pure): `names` are the configured names, `own_name` this host's.
pub(crate) fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    names: &[String],
    own_name: Option<&str>,
) -> Result<(), Refusal> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST);
    if !ANY_HOST.contains(&path) {
        if let Some(host) = host {
            if !known_host(&crate::config::host_of_authority(host), names, own_name) {
                return Err(Refusal::Host(host.to_owned()));
            }
        }
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    if text(header::HeaderName::from_static("sec-fetch-site")).is_some_and(|site| {
        site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")
    }) {
        return Err(Refusal::CrossSite(
            text(header::ORIGIN).unwrap_or("unknown").to_owned(),
        ));
    }
    if let Some(origin) = text(header::ORIGIN) {
        // Same origin: the origin's authority is the Host the request was sent to.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let same = match (authority, host) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
            _ => false,
        };
        if !same {
            return Err(Refusal::CrossSite(origin.to_owned()));
        }
    }
    let json = text(header::CONTENT_TYPE).is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err(Refusal::ContentType);
    }
    Ok(())
}

/// This host's name, lower case (read once).
fn own_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buffer = [0u8; 256];
        // SAFETY: gethostname writes at most buffer.len() bytes into our buffer.
        let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
        ok.then(|| {
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase()
        })
        .filter(|name| !name.is_empty())
    })
    .as_deref()
}

/// The middleware.
pub(crate) async fn guard(
    State(access): State<SharedAccess>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = check(
        request.method(),
        request.uri().path(),
        request.headers(),
        &access.load().hosts,
        own_name(),
    );
    match verdict {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn hosts_by_address_or_known_name_only() {
        let names = vec!["ns1.gslb.example.com".to_owned()];
        let get = |host: &str| {
            check(
                &Method::GET,
                "/v1/status",
                &headers(&[("host", host)]),
                &names,
                Some("node7.dc1"),
            )
        };
        for ok in [
            "127.0.0.1:9353",
            "[::1]:9353",
            "10.0.0.1",
            "localhost:9353",
            "ns1.gslb.example.com.:9353",
            "NODE7:9353",
            "node7.dc1",
        ] {
            assert_eq!(get(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            get("evil.example:9353"),
            Err(Refusal::Host("evil.example:9353".into()))
        );
        // Liveness, readiness and metrics answer any name.
        let any = headers(&[("host", "lb.internal")]);
        assert_eq!(check(&Method::GET, "/metrics", &any, &names, None), Ok(()));
    }

    #[test]
    fn changes_need_json_and_the_same_origin() {
        let post = |pairs: &[(&'static str, &str)]| {
            check(&Method::POST, "/v1/overrides", &headers(pairs), &[], None)
        };
        assert_eq!(post(&[("host", "127.0.0.1:9353"), JSON]), Ok(()));
        assert_eq!(
            post(&[
                ("host", "127.0.0.1:9353"),
                ("content-type", "application/json; charset=utf-8"),
                ("origin", "http://127.0.0.1:9353"),
            ]),
            Ok(())
        );
        assert_eq!(
            post(&[("host", "127.0.0.1:9353"), ("content-type", "text/plain")]),
            Err(Refusal::ContentType)
        );
        assert_eq!(
            post(&[("host", "127.0.0.1:9353")]),
            Err(Refusal::ContentType)
        );
        assert_eq!(
            post(&[
                ("host", "127.0.0.1:9353"),
                JSON,
                ("origin", "http://evil.example")
            ]),
            Err(Refusal::CrossSite("http://evil.example".into()))
        );
        assert_eq!(
            post(&[("host", "127.0.0.1:9353"), JSON, ("origin", "null")]),
            Err(Refusal::CrossSite("null".into()))
        );
        assert!(matches!(
            post(&[
                ("host", "127.0.0.1:9353"),
                JSON,
                ("sec-fetch-site", "cross-site")
            ]),
            Err(Refusal::CrossSite(_))
        ));
    }
}
