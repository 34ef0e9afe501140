//! SOA serials: RFC 1982 arithmetic, the choice of a zone's next serial, and the
//! small file that keeps each zone's last serial and content hash across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version of the serial file.
pub(crate) const SERIAL_FILE_VERSION: u32 = 1;

/// Errors reading or writing the serial file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SerialFileError {
    /// I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a serial file of this version.
    #[error("{path}: not a failoverd serial file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Whether serial `a` is newer than `b` (RFC 1982 §3.2, SERIAL_BITS = 32).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// The serial after `serial` (RFC 1982 §3.1 addition of 1).
pub(crate) fn increment(serial: u32) -> u32 {
    serial.wrapping_add(1)
}

/// The last serial given to a zone and the hash of the content it named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedSerial {
    /// The serial.
    pub serial: u32,
    /// SHA-256 of the transferable content, hex.
    pub hash: String,
}

/// The serial for content hashed `hash`, given the zone file's own serial and the
/// last serial given (if any): unchanged content keeps its serial; changed content
/// gets the next one — or the file's, if an operator moved it further ahead. Never
/// goes backwards.
pub(crate) fn choose(file_serial: u32, last: Option<&SavedSerial>, hash: &str) -> u32 {
    match last {
        None => file_serial,
        Some(last) if is_newer(file_serial, last.serial) => file_serial,
        Some(last) if last.hash == hash => last.serial,
        Some(last) => increment(last.serial),
    }
}

/// The serial file: zone (absolute name) → last serial.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SerialFile {
    /// [`SERIAL_FILE_VERSION`].
    pub version: u32,
    /// Per zone.
    pub zones: BTreeMap<String, SavedSerial>,
}

impl SerialFile {
    /// Reads the file; a missing file is empty.
    pub(crate) fn load(path: &Path) -> Result<Self, SerialFileError> {
        crate::json_file::load(path, |f: &Self| f.version, SERIAL_FILE_VERSION)
            .map(Option::unwrap_or_default)
            .map_err(|e| SerialFileError::of(path, e))
    }

    /// Writes the file atomically (temporary file, fsync, rename, directory fsync).
    pub(crate) fn save(&self, path: &Path) -> Result<(), SerialFileError> {
        let file = Self {
            version: SERIAL_FILE_VERSION,
            zones: self.zones.clone(),
        };
        crate::json_file::save(path, &file).map_err(|e| SerialFileError::of(path, e))
    }
}

impl SerialFileError {
    fn of(path: &Path, error: crate::json_file::JsonFileError) -> Self {
        let path = path.to_owned();
        match error {
            crate::json_file::JsonFileError::Io(source) => Self::Io { path, source },
            crate::json_file::JsonFileError::Format(reason) => Self::Format { path, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1982_comparison() {
        assert!(is_newer(2, 1));
        assert!(!is_newer(1, 2));
        assert!(!is_newer(7, 7));
        // Wrapping: 0 follows u32::MAX.
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(5, u32::MAX - 5));
        assert!(!is_newer(u32::MAX - 5, 5));
        // 2^31 - 1 ahead is newer, 2^31 ahead is undefined (not newer either way).
        assert!(is_newer((1 << 31) - 1, 0));
        assert!(!is_newer(1 << 31, 0));
        assert!(!is_newer(0, 1 << 31));
        assert_eq!(increment(u32::MAX), 0);
    }

    #[test]
    fn serial_choice() {
        let last = SavedSerial {
            serial: 2026010105,
            hash: "aa".into(),
        };
        // First sight: the file's serial.
        assert_eq!(choose(2026010101, None, "aa"), 2026010101);
        // Same content: same serial.
        assert_eq!(choose(2026010101, Some(&last), "aa"), 2026010105);
        // Changed content: the next serial.
        assert_eq!(choose(2026010101, Some(&last), "bb"), 2026010106);
        // The operator moved the file ahead: the file's serial, changed or not.
        assert_eq!(choose(2026020101, Some(&last), "aa"), 2026020101);
        assert_eq!(choose(2026020101, Some(&last), "bb"), 2026020101);
        // Wraps around.
        let top = SavedSerial {
            serial: u32::MAX,
            hash: "aa".into(),
        };
        assert_eq!(choose(u32::MAX - 10, Some(&top), "bb"), 0);
        assert!(is_newer(0, top.serial));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/serials.json");
        assert_eq!(SerialFile::load(&path).unwrap(), SerialFile::default());
        let mut file = SerialFile::default();
        file.zones.insert(
            "example.test.".into(),
            SavedSerial {
                serial: 7,
                hash: "ff".into(),
            },
        );
        file.save(&path).unwrap();
        let back = SerialFile::load(&path).unwrap();
        assert_eq!(back.zones, file.zones);
        std::fs::write(&path, b"{").unwrap();
        assert!(SerialFile::load(&path).is_err());
    }
}
