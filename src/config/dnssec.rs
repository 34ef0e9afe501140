//! `[dnssec]`: which zones are signed, where the keys are, the denial kind and the
//! signature timing.

use std::path::PathBuf;
use std::time::Duration;

use super::validate::{Validator, normalize_name, parse_duration};
use crate::config::ConfigSource;
use crate::config::diagnostics::KeyPath;
use crate::config::dnssec_defaults as defaults;
use crate::config::spec::DnssecSpec;

/// How non-existence is proven in a signed zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum DenialKind {
    /// NSEC3 (RFC 5155) with RFC 9276 parameters: SHA-1, no extra iterations, no salt.
    Nsec3,
    /// NSEC (RFC 4034).
    Nsec,
}

/// DNSSEC signing: `[dnssec]`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnssecConfig {
    /// Where the key files are.
    pub key_directory: PathBuf,
    /// Signed zones (absolute, lower-case names).
    pub zones: Vec<String>,
    /// Denial of existence.
    pub denial: DenialKind,
    /// NSEC3 opt-out (RFC 5155 §6): insecure delegations get no NSEC3 record.
    pub opt_out: bool,
    /// Signature lifetime (expiration minus signing time).
    pub signature_validity: Duration,
    /// Re-signing period (below the validity).
    pub refresh: Duration,
    /// Inception backdating.
    pub inception_offset: Duration,
    /// TTL of DNSKEY, CDS and CDNSKEY.
    pub dnskey_ttl: u32,
}

impl Default for DnssecConfig {
    fn default() -> Self {
        Self {
            key_directory: PathBuf::from(defaults::KEY_DIRECTORY),
            zones: Vec::new(),
            denial: DenialKind::Nsec3,
            opt_out: defaults::OPT_OUT,
            signature_validity: defaults::SIGNATURE_VALIDITY,
            refresh: defaults::REFRESH,
            inception_offset: defaults::INCEPTION_OFFSET,
            dnskey_ttl: defaults::DNSKEY_TTL,
        }
    }
}

impl DnssecConfig {
    /// Whether any zone is signed.
    pub(crate) fn enabled(&self) -> bool {
        !self.zones.is_empty()
    }
}

/// Shortest re-signing period accepted.
const MIN_REFRESH: Duration = Duration::from_secs(3600);
/// Longest signature lifetime accepted (RRSIG times are 32-bit serial arithmetic,
/// RFC 4034 §3.1.5; a year keeps far away from wrap-around).
const MAX_VALIDITY: Duration = Duration::from_secs(366 * 86_400);
/// Longest inception backdating accepted.
const MAX_INCEPTION_OFFSET: Duration = Duration::from_secs(7 * 86_400);

impl Validator<'_> {
    pub(in crate::config) fn dnssec(
        &mut self,
        spec: Option<&DnssecSpec>,
        source: &ConfigSource,
    ) -> DnssecConfig {
        let Some(spec) = spec else {
            return DnssecConfig::default();
        };
        let root = KeyPath::root().key("dnssec");
        let mut config = DnssecConfig {
            key_directory: source.base_dir.join(
                spec.key_directory
                    .as_deref()
                    .unwrap_or(defaults::KEY_DIRECTORY),
            ),
            ..DnssecConfig::default()
        };
        for (i, zone) in spec.zones.iter().enumerate() {
            match normalize_name(zone) {
                Ok(name) if config.zones.contains(&name) => {
                    self.error(
                        root.key("zones").index(i),
                        format!("{name} is listed twice"),
                    );
                }
                Ok(name) => config.zones.push(name),
                Err(e) => self.error(root.key("zones").index(i), e),
            }
        }
        config.denial = match spec.nsec.as_deref().unwrap_or(defaults::NSEC) {
            "nsec3" => DenialKind::Nsec3,
            "nsec" => DenialKind::Nsec,
            other => {
                self.error(
                    root.key("nsec"),
                    format!("unknown value {other:?}, expected \"nsec3\" or \"nsec\""),
                );
                DenialKind::Nsec3
            }
        };
        config.opt_out = spec.opt_out.unwrap_or(defaults::OPT_OUT);
        if config.opt_out && config.denial != DenialKind::Nsec3 {
            self.error(
                root.key("opt_out"),
                "opt-out is an NSEC3 feature: set nsec = \"nsec3\" or drop opt_out",
            );
        }
        let mut duration =
            |key: &str, value: Option<&str>, default: Duration| match value.map(parse_duration) {
                None => default,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    self.error(root.key(key), e);
                    default
                }
            };
        config.signature_validity = duration(
            "signature_validity",
            spec.signature_validity.as_deref(),
            defaults::SIGNATURE_VALIDITY,
        );
        config.refresh = duration("refresh", spec.refresh.as_deref(), defaults::REFRESH);
        config.inception_offset = duration(
            "inception_offset",
            spec.inception_offset.as_deref(),
            defaults::INCEPTION_OFFSET,
        );
        let dnskey_ttl = duration(
            "dnskey_ttl",
            spec.dnskey_ttl.as_deref(),
            Duration::from_secs(u64::from(defaults::DNSKEY_TTL)),
        );
        if config.signature_validity > MAX_VALIDITY {
            self.error(root.key("signature_validity"), "must be at most 366d");
        }
        if config.refresh < MIN_REFRESH {
            self.error(root.key("refresh"), "must be at least 1h");
        }
        // Re-signing must happen well before expiry: with the jitter (up to a tenth of
        // the period) and a TTL's worth of caching, half the lifetime is the bound.
        if config.refresh.saturating_mul(2) > config.signature_validity {
            self.error(
                root.key("refresh"),
                format!(
                    "must be at most half of signature_validity ({}), so signatures are refreshed well before they expire",
                    humantime::format_duration(config.signature_validity)
                ),
            );
        }
        if config.inception_offset > MAX_INCEPTION_OFFSET {
            self.error(root.key("inception_offset"), "must be at most 7d");
        }
        match u32::try_from(dnskey_ttl.as_secs()) {
            Ok(ttl) if ttl > 0 && dnskey_ttl < config.signature_validity => config.dnskey_ttl = ttl,
            _ => self.error(
                root.key("dnskey_ttl"),
                "must be between 1s and signature_validity",
            ),
        }
        config
    }
}
