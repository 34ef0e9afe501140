//! Signing keys: generation, the key files, DNSKEY/DS/CDS/CDNSKEY, and which keys
//! are published and active at a given time.
//!
//! Every key is two files in the key directory, named like BIND's
//! (`K<zone>.+<algorithm>+<key tag>`):
//!
//! ```text
//!  Kexample.com.+015+12345.key      (public; any mode)
//!    # failoverd DNSSEC key
//!    zone: example.com.
//!    role: csk                       csk | ksk | zsk
//!    algorithm: 15                   15 = Ed25519, 13 = ECDSA P-256 SHA-256
//!    public-key: <base64 of the DNSKEY public key field>
//!    created: 2026-12-01T14:00:00Z
//!    publish: 2026-12-01T14:00:00Z   DNSKEY served from here on
//!    activate: 2026-12-01T14:00:00Z  signs from here on
//!    inactive: none                  stops signing here (none: never)
//!    delete: none                    DNSKEY withdrawn here (none: never)
//!  Kexample.com.+015+12345.private  (mode 0600; refused if group or others have any access)
//!    # failoverd DNSSEC private key
//!    algorithm: 15
//!    pkcs8: <base64 of the PKCS#8 document>
//! ```
//!
//! Times are RFC 3339 UTC. Lines starting with `#` and blank lines are ignored;
//! unknown keys are errors (so a typo in a timing key is never silently ignored).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};

use super::DnssecError;
use crate::zone::name;

/// DNSKEY flags: Zone Key.
const FLAG_ZONE: u16 = 256;
/// DNSKEY flags: Secure Entry Point.
const FLAG_SEP: u16 = 1;
/// DS digest type SHA-256 (RFC 4509).
pub(crate) const DIGEST_SHA256: u8 = 2;

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Algorithm {
    /// Ed25519 (RFC 8080), algorithm 15.
    Ed25519,
    /// ECDSA P-256 with SHA-256 (RFC 6605), algorithm 13.
    EcdsaP256,
}

impl Algorithm {
    /// The DNSSEC algorithm number.
    pub(crate) fn number(self) -> u8 {
        match self {
            Self::Ed25519 => 15,
            Self::EcdsaP256 => 13,
        }
    }

    /// The algorithm of a number.
    pub(crate) fn from_number(number: u8) -> Option<Self> {
        match number {
            15 => Some(Self::Ed25519),
            13 => Some(Self::EcdsaP256),
            _ => None,
        }
    }
}

/// What a key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Role {
    /// Combined signing key: the DNSKEY RRset and everything else (flags 257).
    Csk,
    /// Key signing key: the DNSKEY, CDS and CDNSKEY RRsets (flags 257).
    Ksk,
    /// Zone signing key: everything but those (flags 256).
    Zsk,
}

impl Role {
    /// Signs the DNSKEY RRset (and CDS/CDNSKEY).
    pub(crate) fn signs_keys(self) -> bool {
        matches!(self, Self::Csk | Self::Ksk)
    }

    /// Signs the zone's other RRsets.
    pub(crate) fn signs_zone(self) -> bool {
        matches!(self, Self::Csk | Self::Zsk)
    }

    fn flags(self) -> u16 {
        match self {
            Self::Csk | Self::Ksk => FLAG_ZONE | FLAG_SEP,
            Self::Zsk => FLAG_ZONE,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Csk => "csk",
            Self::Ksk => "ksk",
            Self::Zsk => "zsk",
        }
    }

    /// Parses `csk`, `ksk` or `zsk`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "csk" => Some(Self::Csk),
            "ksk" => Some(Self::Ksk),
            "zsk" => Some(Self::Zsk),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// When a key enters and leaves each state (Unix seconds; `None`: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Timing {
    /// When the key was made.
    pub created: u64,
    /// DNSKEY served from.
    pub publish: u64,
    /// Signs from.
    pub activate: u64,
    /// Stops signing at.
    pub inactive: Option<u64>,
    /// DNSKEY withdrawn at.
    pub delete: Option<u64>,
}

impl Timing {
    /// Published and active from `now`, for ever.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn from(now: u64) -> Self {
        Self {
            created: now,
            publish: now,
            activate: now,
            inactive: None,
            delete: None,
        }
    }

    /// Whether the DNSKEY is served at `now`.
    pub(crate) fn is_published(&self, now: u64) -> bool {
        self.publish <= now && self.delete.is_none_or(|d| now < d)
    }

    /// Whether the key signs at `now`.
    pub(crate) fn is_active(&self, now: u64) -> bool {
        self.is_published(now) && self.activate <= now && self.inactive.is_none_or(|i| now < i)
    }

    /// The first state change strictly after `now`, if any.
    pub(crate) fn next_event(&self, now: u64) -> Option<u64> {
        [
            Some(self.publish),
            Some(self.activate),
            self.inactive,
            self.delete,
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now)
        .min()
    }
}

/// The private half of a key, able to sign.
enum Signer {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair, SystemRandom),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(..)")
    }
}

/// One DNSSEC key of a zone.
#[derive(Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Key {
    /// Lower-case wire name of the zone.
    pub zone: Box<[u8]>,
    /// Its role.
    pub role: Role,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Timing.
    pub timing: Timing,
    /// DNSKEY public key field.
    pub public_key: Box<[u8]>,
    /// Key tag (RFC 4034 Appendix B).
    pub tag: u16,
    signer: Signer,
    /// The PKCS#8 document (written back by [`Key::save`]).
    pkcs8: Box<[u8]>,
}

impl Key {
    /// Generates a key for `zone` (absolute text name).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn generate(
        zone: &str,
        role: Role,
        algorithm: Algorithm,
        timing: Timing,
    ) -> Result<Self, DnssecError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            Algorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        .map_err(|_| DnssecError::Crypto("key generation failed".into()))?;
        let wire = name::wire_from_text(zone)
            .ok_or_else(|| DnssecError::Crypto(format!("{zone} is not a DNS name")))?;
        Self::from_pkcs8(&wire, role, algorithm, timing, pkcs8.as_ref())
    }

    fn from_pkcs8(
        zone: &[u8],
        role: Role,
        algorithm: Algorithm,
        timing: Timing,
        pkcs8: &[u8],
    ) -> Result<Self, DnssecError> {
        let rejected = |e: ring::error::KeyRejected| DnssecError::Crypto(e.to_string());
        let (signer, public_key): (Signer, Box<[u8]>) = match algorithm {
            Algorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let public = pair.public_key().as_ref().into();
                (Signer::Ed25519(pair), public)
            }
            Algorithm::EcdsaP256 => {
                let rng = SystemRandom::new();
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .map_err(rejected)?;
                // Uncompressed point 04 || x || y; DNSKEY carries x || y (RFC 6605 §4).
                let public = pair.public_key().as_ref()[1..].into();
                (Signer::EcdsaP256(pair, rng), public)
            }
        };
        let mut key = Self {
            zone: zone.into(),
            role,
            algorithm,
            timing,
            public_key,
            tag: 0,
            signer,
            pkcs8: pkcs8.into(),
        };
        key.tag = key_tag(&key.dnskey_rdata());
        Ok(key)
    }

    /// DNSKEY flags.
    pub(crate) fn flags(&self) -> u16 {
        self.role.flags()
    }

    /// The DNSKEY rdata (flags, protocol 3, algorithm, public key).
    pub(crate) fn dnskey_rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(4 + self.public_key.len());
        rdata.extend_from_slice(&self.flags().to_be_bytes());
        rdata.push(3);
        rdata.push(self.algorithm.number());
        rdata.extend_from_slice(&self.public_key);
        rdata
    }

    /// The DS rdata with a SHA-256 digest (RFC 4509).
    pub(crate) fn ds_rdata(&self) -> Vec<u8> {
        let mut data = self.zone.to_vec();
        data.extend_from_slice(&self.dnskey_rdata());
        let digest = ring::digest::digest(&ring::digest::SHA256, &data);
        let mut rdata = Vec::with_capacity(4 + 32);
        rdata.extend_from_slice(&self.tag.to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(DIGEST_SHA256);
        rdata.extend_from_slice(digest.as_ref());
        rdata
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DnssecError> {
        match &self.signer {
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::EcdsaP256(pair, rng) => pair
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| DnssecError::Crypto("ECDSA signing failed".into())),
        }
    }

    /// File name stem: `K<zone>+<algorithm>+<tag>`.
    pub(crate) fn file_stem(&self) -> String {
        format!(
            "K{}+{:03}+{:05}",
            name::text_from_wire(&self.zone),
            self.algorithm.number(),
            self.tag
        )
    }

    /// Writes the `.key` and `.private` files into `directory` (created if missing);
    /// the private file gets mode 0600 before any key material is written to it.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn save(&self, directory: &Path) -> Result<(PathBuf, PathBuf), DnssecError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DnssecError::Io { path, source }
        };
        std::fs::create_dir_all(directory).map_err(io(directory))?;
        let stem = self.file_stem();
        let public = directory.join(format!("{stem}.key"));
        let private = directory.join(format!("{stem}.private"));
        std::fs::write(&public, self.public_text()).map_err(io(&public))?;
        write_private(&private, &self.private_text()).map_err(io(&private))?;
        Ok((public, private))
    }

    fn public_text(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "# failoverd DNSSEC key ({} of {}, tag {})\nzone: {}\nrole: {}\nalgorithm: {}\npublic-key: {}\ncreated: {}\npublish: {}\nactivate: {}\ninactive: {}\ndelete: {}\n",
            self.role,
            name::text_from_wire(&self.zone),
            self.tag,
            name::text_from_wire(&self.zone),
            self.role,
            self.algorithm.number(),
            b64.encode(&self.public_key),
            time_text(Some(self.timing.created)),
            time_text(Some(self.timing.publish)),
            time_text(Some(self.timing.activate)),
            time_text(self.timing.inactive),
            time_text(self.timing.delete),
        )
    }

    fn private_text(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "# failoverd DNSSEC private key: keep this file mode 0600\nalgorithm: {}\npkcs8: {}\n",
            self.algorithm.number(),
            b64.encode(&self.pkcs8)
        )
    }

    /// Reads a key from its `.key` file (and the `.private` file beside it).
    pub(crate) fn load(public: &Path) -> Result<Self, DnssecError> {
        let bad = |message: String| DnssecError::KeyFile {
            path: public.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(public).map_err(|source| DnssecError::Io {
            path: public.to_owned(),
            source,
        })?;
        let public_fields = fields(
            &text,
            &[
                "zone",
                "role",
                "algorithm",
                "public-key",
                "created",
                "publish",
                "activate",
                "inactive",
                "delete",
            ],
        )
        .map_err(bad)?;
        let get = |k: &str| {
            public_fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let need = |k: &str| get(k).ok_or_else(|| bad(format!("missing `{k}:`")));
        let zone = name::wire_from_text(need("zone")?)
            .ok_or_else(|| bad("`zone:` is not a DNS name".into()))?;
        let role = Role::parse(need("role")?)
            .ok_or_else(|| bad("`role:` must be csk, ksk or zsk".into()))?;
        let algorithm = need("algorithm")?
            .parse::<u8>()
            .ok()
            .and_then(Algorithm::from_number)
            .ok_or_else(|| bad("`algorithm:` must be 15 (Ed25519) or 13 (ECDSA P-256)".into()))?;
        let time = |k: &str| -> Result<Option<u64>, DnssecError> {
            match get(k) {
                None | Some("none") => Ok(None),
                Some(t) => parse_time(t)
                    .map(Some)
                    .map_err(|e| bad(format!("`{k}:` {e}"))),
            }
        };
        let created = time("created")?.unwrap_or(0);
        let timing = Timing {
            created,
            publish: time("publish")?.unwrap_or(created),
            activate: time("activate")?.unwrap_or(created),
            inactive: time("inactive")?,
            delete: time("delete")?,
        };
        let private = public.with_extension("private");
        let private_text = read_private(&private)?;
        let private_fields = fields(&private_text, &["algorithm", "pkcs8"]).map_err(|message| {
            DnssecError::KeyFile {
                path: private.clone(),
                message,
            }
        })?;
        let pkcs8 = private_fields
            .iter()
            .find(|(k, _)| k == "pkcs8")
            .and_then(|(_, v)| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .ok_or_else(|| DnssecError::KeyFile {
                path: private.clone(),
                message: "missing or invalid `pkcs8:`".into(),
            })?;
        let key = Self::from_pkcs8(&zone, role, algorithm, timing, &pkcs8).map_err(|e| {
            DnssecError::KeyFile {
                path: private.clone(),
                message: e.to_string(),
            }
        })?;
        let b64 = base64::engine::general_purpose::STANDARD;
        if need("public-key")? != b64.encode(&key.public_key) {
            return Err(bad(
                "`public-key:` does not match the private key beside it".into(),
            ));
        }
        Ok(key)
    }
}

/// Key tag of DNSKEY rdata (RFC 4034 Appendix B).
pub(crate) fn key_tag(rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, &b) in rdata.iter().enumerate() {
        sum += if i & 1 == 0 {
            u32::from(b) << 8
        } else {
            u32::from(b)
        };
    }
    sum += (sum >> 16) & 0xFFFF;
    (sum & 0xFFFF) as u16
}

/// Every key of `zone` (absolute text name) in `directory`, sorted by tag.
pub(crate) fn load_zone_keys(directory: &Path, zone: &str) -> Result<Vec<Key>, DnssecError> {
    let prefix = format!("k{}+", zone.to_ascii_lowercase());
    let entries = std::fs::read_dir(directory).map_err(|source| DnssecError::Io {
        path: directory.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".key"))
        })
        .collect();
    paths.sort();
    let mut keys = paths
        .iter()
        .map(|p| Key::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_by_key(|k| k.tag);
    Ok(keys)
}

/// Splits `key: value` lines, refusing keys not in `known`.
fn fields(text: &str, known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line {}: expected `key: value`", i + 1));
        };
        let key = key.trim();
        if !known.contains(&key) {
            return Err(format!(
                "line {}: unknown key `{key}`, expected one of: {}",
                i + 1,
                known.join(", ")
            ));
        }
        out.push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

/// RFC 3339 UTC text of a Unix time, or `none`.
pub(crate) fn time_text(time: Option<u64>) -> String {
    match time {
        None => "none".into(),
        Some(t) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
        }
    }
}

/// Parses an RFC 3339 time, `now`, or `+DURATION` (from `now`), into Unix seconds.
pub(crate) fn parse_time_from(text: &str, now: u64) -> Result<u64, String> {
    if text == "now" {
        return Ok(now);
    }
    if let Some(rest) = text.strip_prefix('+') {
        let d = humantime::parse_duration(rest).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(now + d.as_secs());
    }
    parse_time(text)
}

fn parse_time(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .as_secs())
}

pub(crate) use crate::runtime::clock::unix_now;

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // Mode of an existing umask-narrowed file is already 0600 or less; make sure.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A private key file, refused when group or others have access to it (the check
/// every secret file gets: [`crate::config::secret_file`]).
fn read_private(path: &Path) -> Result<String, DnssecError> {
    use crate::config::secret_file::{self, SecretFileError};
    secret_file::read_to_string(path).map_err(|error| match error {
        SecretFileError::Read { path, source } => DnssecError::Io { path, source },
        exposed => DnssecError::KeyFile {
            path: path.to_owned(),
            message: format!("private key {}", exposed.problem()),
        },
    })
}

/// DS, CDS and CDNSKEY lines (zone-file text) for the keys the parent should hold:
/// every published KSK/CSK that has not gone inactive.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn parent_records(keys: &[Key], now: u64, ttl: u32) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = Vec::new();
    for key in keys.iter().filter(|k| is_parent_key(k, now)) {
        let zone = name::text_from_wire(&key.zone);
        let ds = key.ds_rdata();
        let digest: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
        for t in ["DS", "CDS"] {
            lines.push(format!(
                "{zone} {ttl} IN {t} {} {} {} {digest}",
                key.tag,
                key.algorithm.number(),
                DIGEST_SHA256
            ));
        }
        lines.push(format!(
            "{zone} {ttl} IN CDNSKEY {} 3 {} {}",
            key.flags(),
            key.algorithm.number(),
            b64.encode(&key.public_key)
        ));
    }
    lines
}

/// Whether the parent should carry a DS for `key` at `now`.
pub(crate) fn is_parent_key(key: &Key, now: u64) -> bool {
    key.role.signs_keys()
        && key.timing.is_published(now)
        && key.timing.inactive.is_none_or(|i| now < i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tag_matches_rfc_4034_example_shape() {
        // A fixed DNSKEY: tag is the 16-bit one's-complement-style sum.
        let rdata = [1u8, 1, 3, 15, 0xAA, 0xBB];
        let expected = ((0x0101u32 + 0x030F + 0xAABB) & 0xFFFF) as u16;
        assert_eq!(key_tag(&rdata), expected);
    }

    #[test]
    fn keys_round_trip_through_their_files_and_private_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let mut timing = Timing::from(1_700_000_000);
            timing.inactive = Some(1_800_000_000);
            let key = Key::generate("Example.TEST.", Role::Ksk, algorithm, timing).unwrap();
            let (public, private) = key.save(dir.path()).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&private).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let back = Key::load(&public).unwrap();
            assert_eq!(back.tag, key.tag);
            assert_eq!(back.timing, key.timing);
            assert_eq!(back.dnskey_rdata(), key.dnskey_rdata());
            assert_eq!(back.flags(), 257);
            let sig = back.sign(b"abc").unwrap();
            assert_eq!(sig.len(), 64);
        }
        let keys = load_zone_keys(dir.path(), "example.test.").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(parent_records(&keys, 1_750_000_000, 3600).len(), 6);
        assert!(parent_records(&keys, 1_850_000_000, 3600).is_empty());
    }

    #[test]
    fn a_readable_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate(
            "example.test.",
            Role::Csk,
            Algorithm::Ed25519,
            Timing::from(1),
        )
        .unwrap();
        let (public, private) = key.save(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = Key::load(&public).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "{0}: private key has mode 0644: group or others can read it; run: chmod 600 {0}",
                    private.display()
                )
            );
        }
    }
}
