//! `[transfer]`: secondaries (NOTIFY targets, transfer ACL), TSIG keys, the IXFR
//! journal and the serial file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;

use super::validate::{Validator, normalize_name, parse_duration};
use crate::config::diagnostics::KeyPath;
use crate::config::secret_file;
use crate::config::spec::{SecondarySpec, TransferSpec, TsigKeySpec};
use crate::config::transfer_defaults as defaults;
use crate::config::{ConfigSource, HealthConfig, Secret};

/// Zone transfers (AXFR/IXFR) and NOTIFY to secondaries: `[transfer]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TransferConfig {
    /// Versions kept per zone for IXFR.
    pub journal_versions: usize,
    /// Where serials and content hashes are saved (None: not saved).
    pub state_file: Option<PathBuf>,
    /// NOTIFY attempts per address and change.
    pub notify_attempts: u32,
    /// First NOTIFY response wait (doubles per retry).
    pub notify_timeout: Duration,
    /// Address NOTIFYs leave from (None: a DNS listen address of the target's family,
    /// see [`crate::dns::xfr::notify::source_for`]).
    pub notify_source: Option<std::net::IpAddr>,
    /// TSIG keys.
    pub keys: Vec<TsigKey>,
    /// A signed message is accepted only if its time is within the smaller of its
    /// own Fudge and this of ours.
    pub tsig_window: Duration,
    /// Secondaries (empty: transfers are refused and nothing is notified).
    pub secondaries: Vec<Secondary>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            journal_versions: defaults::JOURNAL_VERSIONS,
            state_file: None,
            notify_attempts: defaults::NOTIFY_ATTEMPTS,
            notify_timeout: defaults::NOTIFY_TIMEOUT,
            notify_source: None,
            keys: Vec::new(),
            tsig_window: defaults::TSIG_WINDOW,
            secondaries: Vec::new(),
        }
    }
}

impl TransferConfig {
    /// Whether any secondary is configured.
    pub(crate) fn enabled(&self) -> bool {
        !self.secondaries.is_empty()
    }
}

/// TSIG algorithms (RFC 8945).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum TsigAlgorithm {
    /// HMAC-SHA256.
    HmacSha256,
    /// HMAC-SHA384.
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl TsigAlgorithm {
    /// Every algorithm with its configuration name (also its DNS name).
    pub(crate) const ALL: [(&'static str, Self); 3] = [
        ("hmac-sha256", Self::HmacSha256),
        ("hmac-sha384", Self::HmacSha384),
        ("hmac-sha512", Self::HmacSha512),
    ];

    /// The configuration name (the algorithm's DNS name without the final dot).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A TSIG key.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct TsigKey {
    /// Lower-case absolute name (`xfr-key.`).
    pub name: String,
    /// Algorithm.
    pub algorithm: TsigAlgorithm,
    /// The decoded secret.
    pub secret: Secret,
}

/// A secondary server of `[[transfer.secondaries]]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Secondary {
    /// Name in logs and metrics.
    pub name: String,
    /// Absolute lower-case zone names (empty: every zone).
    pub zones: Vec<String>,
    /// NOTIFY targets.
    pub notify: Vec<SocketAddr>,
    /// Sources allowed to transfer.
    pub allow: Vec<ipnet::IpNet>,
    /// Index into [`TransferConfig::keys`].
    pub key: Option<usize>,
}

impl Secondary {
    /// Whether the secondary serves `zone` (absolute, lower-case).
    pub(crate) fn serves(&self, zone: &str) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|z| z == zone)
    }
}

/// Range of `journal_versions`.
const JOURNAL_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;
/// Range of `notify_attempts`.
const ATTEMPTS_RANGE: std::ops::RangeInclusive<i64> = 1..=20;
/// Shortest secret accepted (bytes; RFC 8945 §6: at least the hash's half).
const MIN_SECRET_LEN: usize = 16;

impl Validator<'_> {
    pub(in crate::config) fn transfer(
        &mut self,
        spec: Option<&TransferSpec>,
        health: &HealthConfig,
        source: &ConfigSource,
    ) -> TransferConfig {
        let Some(spec) = spec else {
            return TransferConfig::default();
        };
        let root = KeyPath::root().key("transfer");
        let journal_versions = match spec.journal_versions {
            None => defaults::JOURNAL_VERSIONS,
            Some(n) if JOURNAL_RANGE.contains(&n) => n as usize,
            Some(n) => {
                self.error(
                    root.key("journal_versions"),
                    format!("{n} is out of range 1–10000"),
                );
                defaults::JOURNAL_VERSIONS
            }
        };
        let notify_attempts = match spec.notify_attempts {
            None => defaults::NOTIFY_ATTEMPTS,
            Some(n) if ATTEMPTS_RANGE.contains(&n) => n as u32,
            Some(n) => {
                self.error(
                    root.key("notify_attempts"),
                    format!("{n} is out of range 1–20"),
                );
                defaults::NOTIFY_ATTEMPTS
            }
        };
        let notify_timeout = match spec.notify_timeout.as_deref().map(parse_duration) {
            None => defaults::NOTIFY_TIMEOUT,
            Some(Ok(d)) if !d.is_zero() && d <= std::time::Duration::from_secs(60) => d,
            Some(Ok(_)) => {
                self.error(root.key("notify_timeout"), "must be between 1ms and 60s");
                defaults::NOTIFY_TIMEOUT
            }
            Some(Err(e)) => {
                self.error(root.key("notify_timeout"), e);
                defaults::NOTIFY_TIMEOUT
            }
        };
        let tsig_window = match spec.tsig_window.as_deref().map(parse_duration) {
            None => defaults::TSIG_WINDOW,
            Some(Ok(d))
                if d >= std::time::Duration::from_secs(1) && d <= defaults::MAX_TSIG_WINDOW =>
            {
                std::time::Duration::from_secs(d.as_secs())
            }
            Some(Ok(_)) => {
                self.error(
                    root.key("tsig_window"),
                    "must be between 1s and 65535s (TSIG times are whole seconds; a signed \
                     message's own Fudge is at most 65535s)",
                );
                defaults::TSIG_WINDOW
            }
            Some(Err(e)) => {
                self.error(root.key("tsig_window"), e);
                defaults::TSIG_WINDOW
            }
        };
        let notify_source = spec.notify_source.as_deref().and_then(|text| {
            let path = root.key("notify_source");
            match text.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                    self.error(
                        path,
                        format!("{ip} is not an address of this host; set one of its addresses (e.g. one of [server] listen) or remove the key"),
                    );
                    None
                }
                Ok(ip) => {
                    // An address this host does not have makes every NOTIFY fail.
                    if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
                        self.warning(
                            path,
                            format!("cannot send from {ip} on this host ({e}): NOTIFYs will fail; set an address of this host"),
                        );
                    }
                    Some(ip)
                }
                Err(_) => {
                    self.error(
                        path,
                        format!("{text:?} is not an IP address (write it without a port, e.g. \"192.0.2.1\" or \"2001:db8::1\")"),
                    );
                    None
                }
            }
        });
        let state_file = match &spec.state_file {
            Some(file) => Some(source.base_dir.join(file)),
            None => health.state_file.as_ref().map(|p| {
                let mut name = p.as_os_str().to_owned();
                name.push(defaults::STATE_SUFFIX);
                name.into()
            }),
        };
        let keys: Vec<TsigKey> = spec
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, key)| self.tsig_key(key, &root.key("keys").index(i), source))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.name == key.name) {
                self.error(
                    root.key("keys").index(i).key("name"),
                    format!("key {} is defined twice", key.name),
                );
            }
        }
        let mut secondaries: Vec<Secondary> = Vec::new();
        for (i, secondary) in spec.secondaries.iter().enumerate() {
            let path = root.key("secondaries").index(i);
            let Some(secondary) = self.secondary(secondary, &spec.keys, &keys, &path) else {
                continue;
            };
            if secondaries.iter().any(|s| s.name == secondary.name) {
                self.error(
                    path.key("name"),
                    format!("secondary {:?} is defined twice", secondary.name),
                );
            }
            secondaries.push(secondary);
        }
        if !secondaries.is_empty() && state_file.is_none() {
            self.warning(
                root.key("state_file"),
                "serials are not saved (set state_file or [health] state_file): after a \
                 restart, serials start again from the zone files' and secondaries may keep \
                 newer copies",
            );
        }
        TransferConfig {
            journal_versions,
            state_file,
            notify_attempts,
            notify_timeout,
            notify_source,
            keys,
            tsig_window,
            secondaries,
        }
    }

    fn tsig_key(
        &mut self,
        spec: &TsigKeySpec,
        path: &KeyPath,
        source: &ConfigSource,
    ) -> Option<TsigKey> {
        let name = match normalize_name(&spec.name) {
            Ok(name) => name,
            Err(e) => {
                self.error(path.key("name"), e);
                return None;
            }
        };
        let text = spec.algorithm.as_deref().unwrap_or(defaults::ALGORITHM);
        let text = text.trim_end_matches('.').to_ascii_lowercase();
        let algorithm = match TsigAlgorithm::ALL.iter().find(|(n, _)| *n == text) {
            Some((_, a)) => *a,
            None => {
                self.error(
                    path.key("algorithm"),
                    format!(
                        "{text:?} is not one of {}",
                        TsigAlgorithm::ALL.map(|(n, _)| n).join(", ")
                    ),
                );
                return None;
            }
        };
        let (text, key) = match (&spec.secret, &spec.secret_file) {
            (Some(secret), None) => (secret.clone(), "secret"),
            (None, Some(file)) => match secret_file::read_to_string(&source.base_dir.join(file)) {
                Ok(text) => (
                    text.lines().next().unwrap_or_default().to_owned(),
                    "secret_file",
                ),
                Err(e) => {
                    self.error(path.key("secret_file"), e.to_string());
                    return None;
                }
            },
            _ => {
                self.error(
                    path.clone(),
                    "exactly one of secret and secret_file is needed",
                );
                return None;
            }
        };
        let secret = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error(path.key(key), format!("the secret is not base64: {e}"));
                return None;
            }
        };
        if secret.len() < MIN_SECRET_LEN {
            self.error(
                path.key(key),
                format!("the secret must be at least {MIN_SECRET_LEN} bytes"),
            );
            return None;
        }
        Some(TsigKey {
            name,
            algorithm,
            secret: Secret::new(secret),
        })
    }

    fn secondary(
        &mut self,
        spec: &SecondarySpec,
        key_specs: &[TsigKeySpec],
        keys: &[TsigKey],
        path: &KeyPath,
    ) -> Option<Secondary> {
        if spec.name.trim().is_empty() {
            self.error(path.key("name"), "a secondary needs a name");
        }
        let mut zones = Vec::new();
        for (i, zone) in spec.zones.iter().flatten().enumerate() {
            match normalize_name(zone) {
                Ok(zone) => zones.push(zone),
                Err(e) => self.error(path.key("zones").index(i), e),
            }
        }
        let mut notify = Vec::new();
        for (i, text) in spec.notify.iter().enumerate() {
            match text.parse::<SocketAddr>() {
                Ok(addr) if addr.port() != 0 => notify.push(addr),
                _ => self.error(
                    path.key("notify").index(i),
                    format!("{text:?} is not an address with a port (e.g. 192.0.2.53:53)"),
                ),
            }
        }
        let allow = match &spec.allow {
            None => notify.iter().map(|a| IpNet::from(a.ip())).collect(),
            Some(list) => {
                let mut allow = Vec::new();
                for (i, text) in list.iter().enumerate() {
                    let parsed = text
                        .parse::<IpNet>()
                        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
                    match parsed {
                        Ok(net) => allow.push(net.trunc()),
                        Err(_) => self.error(
                            path.key("allow").index(i),
                            format!("{text:?} is not an address or prefix (e.g. 192.0.2.0/24)"),
                        ),
                    }
                }
                allow
            }
        };
        if notify.is_empty() && allow.is_empty() {
            self.error(
                path.clone(),
                "a secondary needs notify addresses or an allow list",
            );
        }
        let key = match &spec.key {
            None => None,
            Some(name) => {
                let wanted = normalize_name(name).unwrap_or_else(|_| name.clone());
                match keys.iter().position(|k| k.name == wanted) {
                    Some(index) => Some(index),
                    None => {
                        // A key that failed its own checks is reported there.
                        if !key_specs
                            .iter()
                            .any(|k| normalize_name(&k.name).is_ok_and(|n| n == wanted))
                        {
                            self.error(
                                path.key("key"),
                                format!("unknown key {name:?} (define it in [[transfer.keys]])"),
                            );
                        }
                        return None;
                    }
                }
            }
        };
        Some(Secondary {
            name: spec.name.clone(),
            zones,
            notify,
            allow,
            key,
        })
    }
}
