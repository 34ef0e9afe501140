//! `[admin]`: listen addresses, bearer tokens, public paths, TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::validate::Validator;
use crate::config::ConfigSource;
use crate::config::defaults::admin as defaults;
use crate::config::diagnostics::KeyPath;
use crate::config::secret_file;
use crate::config::spec::{AdminSpec, RoleSpec};

/// The admin HTTP API.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AdminConfig {
    /// Listen addresses (empty: no admin API).
    pub listen: Vec<SocketAddr>,
    /// Who may call what.
    pub access: AdminAccess,
    /// TLS certificate chain and key (PEM files), if the listeners speak HTTPS.
    pub tls: Option<TlsFiles>,
    /// Connection caps and timeouts of every admin listener.
    pub limits: AdminLimits,
}

/// The host part of a URL authority (`host:port`, `[v6]:port`), lower case, without
/// a trailing dot.
pub(crate) fn host_of_authority(authority: &str) -> String {
    let authority = authority.trim();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if authority.matches(':').count() > 1 {
        authority
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Connection caps and timeouts of the admin listeners: a client that connects and
/// says nothing, trickles its headers or stops reading is cut off, and no client
/// address holds more than its share of connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AdminLimits {
    /// Most open connections (the listener also keeps below a quarter of the fd limit).
    pub max_connections: usize,
    /// Most open connections from one client address.
    pub max_connections_per_source: usize,
    /// Time to send a request's headers (and the keep-alive idle time between requests).
    pub header_timeout: std::time::Duration,
    /// Time to send a request's body.
    pub body_timeout: std::time::Duration,
    /// Time a connection may make no progress at all.
    pub idle_timeout: std::time::Duration,
    /// Time a TLS handshake may take.
    pub handshake_timeout: std::time::Duration,
}

impl AdminLimits {
    /// The defaults.
    pub(crate) const DEFAULT: Self = Self {
        max_connections: defaults::MAX_CONNECTIONS,
        max_connections_per_source: defaults::MAX_CONNECTIONS_PER_SOURCE,
        header_timeout: defaults::HEADER_TIMEOUT,
        body_timeout: defaults::BODY_TIMEOUT,
        idle_timeout: defaults::IDLE_TIMEOUT,
        handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
    };
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Tokens of the admin API and the calls open without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AdminAccess {
    /// Bearer tokens (none: calls are open, changes are taken from loopback only).
    pub tokens: Vec<AdminToken>,
    /// Calls open without a token when tokens are set.
    pub public: Vec<PublicPath>,
    /// Host names (lower case, no port) a request's `Host` may name besides
    /// addresses, `localhost` and this host's name: `[admin] names` and the hosts of
    /// `[health] servers`.
    pub hosts: Vec<String>,
}

/// A bearer token of the admin API.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct AdminToken {
    /// Its name ("who" in overrides and logs).
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
    /// SHA-256 of the token (compared in constant time; the token itself is not kept).
    pub digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum AdminRole {
    /// Read status, overrides, events, explain.
    Read,
    /// Also change overrides and reload.
    Operate,
}

/// A call that may be opened without a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum PublicPath {
    /// `/metrics`.
    Metrics,
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// `/status`, `/v1/status`, `/v1/events` and the status page (which reads both).
    Status,
}

impl PublicPath {
    /// Every public path with its config name.
    pub(crate) const ALL: [(&'static str, Self); 4] = [
        ("metrics", Self::Metrics),
        ("healthz", Self::Healthz),
        ("readyz", Self::Readyz),
        ("status", Self::Status),
    ];
}

/// PEM files of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Shortest token accepted (bytes).
const MIN_TOKEN_LEN: usize = 16;

impl Validator<'_> {
    pub(in crate::config) fn admin(
        &mut self,
        spec: &AdminSpec,
        source: &ConfigSource,
        servers: &[String],
    ) -> AdminConfig {
        let root = KeyPath::root().key("admin");
        let mut listen: Vec<SocketAddr> = Vec::new();
        for (i, text) in spec.listen.iter().flat_map(|l| l.values()).enumerate() {
            let path = match &spec.listen {
                Some(crate::config::spec::OneOrMany::Many(_)) => root.key("listen").index(i),
                _ => root.key("listen"),
            };
            match text.parse::<SocketAddr>() {
                Ok(addr) if addr.port() != 0 && listen.contains(&addr) => {
                    self.error(path, format!("{addr} is listed twice"))
                }
                Ok(addr) => listen.push(addr),
                Err(_) => self.error(
                    path,
                    format!("{text:?} is not an address with a port (e.g. 127.0.0.1:9353)"),
                ),
            }
        }
        let mut tokens: Vec<AdminToken> = Vec::new();
        for (i, token) in spec.tokens.iter().enumerate() {
            let path = root.key("tokens").index(i);
            if token.name.trim().is_empty() {
                self.error(path.key("name"), "a token needs a name");
            } else if tokens.iter().any(|t| t.name == token.name) {
                self.error(
                    path.key("name"),
                    format!("token {:?} is defined twice", token.name),
                );
            }
            let secret = match secret_file::read(&source.base_dir.join(&token.file)) {
                Ok(bytes) => bytes
                    .split(|b| *b == b'\n')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii()
                    .to_vec(),
                Err(e) => {
                    self.error(path.key("file"), e.to_string());
                    continue;
                }
            };
            if secret.len() < MIN_TOKEN_LEN {
                self.error(
                    path.key("file"),
                    format!(
                        "the token in {} must be at least {MIN_TOKEN_LEN} bytes",
                        token.file
                    ),
                );
                continue;
            }
            let digest: [u8; 32] = Sha256::digest(&secret).into();
            if tokens.iter().any(|t| t.digest == digest) {
                self.error(path.key("file"), "the same token is given twice");
            }
            tokens.push(AdminToken {
                name: token.name.clone(),
                role: match token.role {
                    RoleSpec::Read => AdminRole::Read,
                    RoleSpec::Operate => AdminRole::Operate,
                },
                digest,
            });
        }
        let public = match &spec.public {
            None => defaults::PUBLIC
                .iter()
                .filter_map(|name| PublicPath::ALL.iter().find(|(n, _)| n == name))
                .map(|(_, path)| *path)
                .collect(),
            Some(names) => {
                let mut public = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    match PublicPath::ALL.iter().find(|(n, _)| n == name) {
                        Some((_, path)) => public.push(*path),
                        None => self.error(
                            root.key("public").index(i),
                            format!(
                                "{name:?} is not one of {}",
                                PublicPath::ALL.map(|(n, _)| n).join(", ")
                            ),
                        ),
                    }
                }
                if tokens.is_empty() && !names.is_empty() {
                    self.warning(
                        root.key("public"),
                        "without [[admin.tokens]] every read is open anyway",
                    );
                }
                public
            }
        };
        let tls = spec.tls.as_ref().and_then(|tls| {
            let path = root.key("tls");
            let mut ok = true;
            if let Err(e) = std::fs::metadata(source.base_dir.join(&tls.cert)) {
                self.error(path.key("cert"), format!("cannot read {}: {e}", tls.cert));
                ok = false;
            }
            // The private key is a secret; the certificate is not.
            if let Err(e) = secret_file::check_mode(&source.base_dir.join(&tls.key)) {
                self.error(path.key("key"), e.to_string());
                ok = false;
            }
            ok.then(|| TlsFiles {
                cert: source.base_dir.join(&tls.cert),
                key: source.base_dir.join(&tls.key),
            })
        });
        if tokens.is_empty() && listen.iter().any(|a| !a.ip().is_loopback()) {
            self.warning(
                root.key("listen"),
                "the admin API listens beyond loopback without [[admin.tokens]]: anyone who \
                 reaches it can read status (changes are still taken from loopback only)",
            );
        }
        let limits = self.admin_limits(spec, &root);
        let mut names = Vec::new();
        for (i, name) in spec.names.iter().flatten().enumerate() {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty()
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if valid {
                names.push(name);
            } else {
                self.error(
                    root.key("names").index(i),
                    format!("{name:?} is not a host name (letters, digits, '-' and '.')"),
                );
            }
        }
        let mut hosts = names;
        for server in servers {
            if let Some(host) = server
                .split_once("://")
                .and_then(|(_, rest)| rest.split('/').next())
                .map(super::host_of_authority)
            {
                if !host.is_empty() && !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
        }
        AdminConfig {
            listen,
            access: AdminAccess {
                tokens,
                public,
                hosts,
            },
            tls,
            limits,
        }
    }

    /// Connection caps and timeouts of the admin listeners.
    fn admin_limits(&mut self, spec: &AdminSpec, root: &KeyPath) -> AdminLimits {
        let d = AdminLimits::DEFAULT;
        let max_connections = self.ranged(
            root.key("max_connections"),
            spec.max_connections,
            d.max_connections as i64,
            1..=65535,
            "",
        ) as usize;
        let max_connections_per_source = self.ranged(
            root.key("max_connections_per_source"),
            spec.max_connections_per_source,
            (d.max_connections_per_source as i64).min(max_connections as i64),
            1..=max_connections as i64,
            " (at most max_connections)",
        ) as usize;
        let second = std::time::Duration::from_millis(100);
        let hour = std::time::Duration::from_secs(3600);
        let header_timeout = self.duration(
            root.key("header_timeout"),
            spec.header_timeout.as_deref(),
            d.header_timeout,
            second..=hour,
        );
        let body_timeout = self.duration(
            root.key("body_timeout"),
            spec.body_timeout.as_deref(),
            d.body_timeout,
            second..=hour,
        );
        let idle_timeout = self.duration(
            root.key("idle_timeout"),
            spec.idle_timeout.as_deref(),
            d.idle_timeout,
            second..=hour,
        );
        let handshake_timeout = self.duration(
            root.key("handshake_timeout"),
            spec.handshake_timeout.as_deref(),
            d.handshake_timeout,
            second..=hour,
        );
        AdminLimits {
            max_connections,
            max_connections_per_source,
            header_timeout,
            body_timeout,
            idle_timeout,
            handshake_timeout,
        }
    }
}
