//! DNSSEC, signed ahead of time: every answer a query can get carries signatures
//! computed when the snapshot is built, never per query.
//!
//! ```text
//!  key directory ─▶ KeyRing (keys + timing, per signed zone)
//!                      │
//!  Snapshot build ─────┴─▶ per signed zone (off the async workers):
//!     apex: DNSKEY, CDS, CDNSKEY, NSEC3PARAM added      (signed::prepare_zone)
//!     SignedZone: an RRSIG for every authoritative static RRset, and the
//!                 NSEC3/NSEC chain with its RRSIGs        (signed, chain)
//!     every dynamic variant: its RRSIG                     (dns::snapshot)
//!     signatures made after the build, reused while the RRset,
//!     keys and window are the same                         (cache)
//!  query (DO=1): pre-encoded answer + RRSIG bytes; denial = chain lookups
//!  plane timer: re-sign before expiry (refresh, with jitter; key events)
//! ```
//!
//! Layering: `config → zone → dnssec → dns`. Nothing here does IO but
//! [`KeyRing::load`] and [`keys::Key::save`]; time comes in as arguments.

pub(crate) mod cache;
pub(crate) mod chain;
pub(crate) mod keys;
pub(crate) mod refresh;
pub(crate) mod sign;
pub(crate) mod signed;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use self::keys::Key;
pub(crate) use self::sign::Window;
pub(crate) use self::signed::{DenialProof, SignedZone};
use crate::config::DnssecConfig;
use crate::zone::name;

/// RR type codes (one table for the crate: [`crate::proto::rtype`]).
pub(crate) use crate::proto::rtype;

/// Errors of DNSSEC key handling and signing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum DnssecError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is malformed.
    #[error("{path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A signed zone has no key for a role at the signing time.
    #[error(
        "zone {zone}: no active {what} key in {directory} (run `failoverd dnssec keygen {zone}`)"
    )]
    NoActiveKey {
        /// The zone.
        zone: String,
        /// `zone-signing` or `key-signing`.
        what: &'static str,
        /// The key directory.
        directory: PathBuf,
    },
    /// A cryptographic operation failed.
    #[error("{0}")]
    Crypto(String),
}

/// The keys of one signed zone.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ZoneKeys {
    /// Absolute lower-case text name.
    pub zone: String,
    /// Lower-case wire name.
    pub wire: Box<[u8]>,
    /// Its keys, by tag.
    pub keys: Vec<Key>,
}

impl ZoneKeys {
    /// Keys published at `now` (the DNSKEY RRset).
    pub(crate) fn published(&self, now: u64) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.timing.is_published(now))
    }

    /// Active keys signing the DNSKEY/CDS/CDNSKEY RRsets (`keys`) or the rest.
    pub(crate) fn signers(&self, now: u64, keys: bool) -> Vec<&Key> {
        self.keys
            .iter()
            .filter(|k| k.timing.is_active(now))
            .filter(|k| {
                if keys {
                    k.role.signs_keys()
                } else {
                    k.role.signs_zone()
                }
            })
            .collect()
    }
}

/// Every signed zone's keys and the `[dnssec]` settings they were loaded with.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct KeyRing {
    /// The settings.
    pub settings: DnssecConfig,
    /// Keys per signed zone.
    pub zones: Vec<ZoneKeys>,
}

impl KeyRing {
    /// Loads the keys of every zone `[dnssec] zones` lists (None: DNSSEC off). A zone
    /// without an active key for either role at `now` is an error.
    pub(crate) fn load(
        settings: &DnssecConfig,
        now: u64,
    ) -> Result<Option<Arc<Self>>, DnssecError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let mut zones = Vec::new();
        for zone in &settings.zones {
            let keys = keys::load_zone_keys(&settings.key_directory, zone)?;
            let zone_keys = ZoneKeys {
                zone: zone.clone(),
                wire: name::wire_from_text(zone).unwrap_or_default().into(),
                keys,
            };
            for (role_keys, what) in [(false, "zone-signing"), (true, "key-signing")] {
                if zone_keys.signers(now, role_keys).is_empty() {
                    return Err(DnssecError::NoActiveKey {
                        zone: zone.clone(),
                        what,
                        directory: settings.key_directory.clone(),
                    });
                }
            }
            zones.push(zone_keys);
        }
        Ok(Some(Arc::new(Self {
            settings: settings.clone(),
            zones,
        })))
    }

    /// The keys of the zone with lower-case wire origin `origin`.
    pub(crate) fn zone(&self, origin: &[u8]) -> Option<(usize, &ZoneKeys)> {
        self.zones
            .iter()
            .enumerate()
            .find(|(_, z)| &*z.wire == origin)
    }

    /// The next key state change after `now` (publish, activate, inactive, delete).
    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        self.zones
            .iter()
            .flat_map(|z| z.keys.iter())
            .filter_map(|k| k.timing.next_event(now))
            .min()
    }

    /// The signature window for signing at `now`.
    pub(crate) fn window(&self, now: u64) -> Window {
        Window::at(
            now,
            self.settings.inception_offset.as_secs(),
            self.settings.signature_validity.as_secs(),
        )
    }
}

/// What a snapshot build signs with: the keys, and the time it signs at.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Signing {
    /// The keys.
    pub keys: Arc<KeyRing>,
    /// Unix seconds the signatures are made at.
    pub now: u64,
}
