//! The state file: decided endpoint health (and operator overrides) saved atomically,
//! so a restarted server answers from what it knew, not from defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::health::overrides::Entry;
use crate::model::HealthState;

/// Format version of the state file.
pub(crate) const STATE_VERSION: u32 = 1;

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PersistError {
    /// I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a state file of this version.
    #[error("{path}: not a failoverd state file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What is saved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SavedState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// Unix milliseconds of the save.
    pub saved_at_ms: u64,
    /// Decided state per endpoint (`pool/name`).
    pub endpoints: BTreeMap<String, SavedEndpoint>,
    /// Operator overrides and releases (see [`crate::health::overrides`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Entry>,
    /// Endpoint forces as files before overrides were replicated kept them
    /// (`pool/name` → state): read, taken as overrides older than any other; no
    /// longer written.
    #[serde(default, skip_serializing)]
    pub forced: BTreeMap<String, HealthState>,
    /// `primary` records' last agreed primary (`name TYPE` → `pool/name`), so a
    /// restart during a split brain still holds the right one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primaries: BTreeMap<String, String>,
    /// Unix milliseconds since which the endpoints' `changes`, `downs` and `down_ms`
    /// count (absent in files written before they were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_since_ms: Option<u64>,
}

/// One endpoint's saved state.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SavedEndpoint {
    /// Up or down.
    pub state: HealthState,
    /// Unix milliseconds of the last change.
    pub changed_at_ms: u64,
    /// Flap-damping penalty as of `saved_at_ms` (decays on restore).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub penalty: f64,
    /// Whether flap damping withholds the way back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
    /// Changes of the decided state either way, since the state's `counted_since_ms`.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub changes: u64,
    /// Changes to down (a first decision of down included).
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub downs: u64,
    /// Milliseconds spent down up to `changed_at_ms`.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub down_ms: u64,
}

fn is_zero_count(value: &u64) -> bool {
    *value == 0
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// Reads the state file; `Ok(None)` if it does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<SavedState>, PersistError> {
    crate::json_file::load(path, |s: &SavedState| s.version, STATE_VERSION)
        .map_err(|e| PersistError::of(path, e))
}

/// Writes the state file atomically: a temporary file in the same directory, synced,
/// then renamed over the old one (and the directory synced), so a crash leaves the old
/// or the new state, never half of one.
pub(crate) fn save(path: &Path, state: &SavedState) -> Result<(), PersistError> {
    crate::json_file::save(path, state).map_err(|e| PersistError::of(path, e))
}

/// Writes the state file for every writer of a process, newest state last: each save
/// carries the sequence number of the state it writes (numbered as the states were
/// built), and a save older than the one on disk is skipped. So a slow background
/// save can never put back an older override set over a confirmed change.
#[derive(Debug)]
pub(crate) struct StateWriter {
    path: PathBuf,
    written: std::sync::Mutex<u64>,
}

impl StateWriter {
    /// A writer of `path`.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            written: std::sync::Mutex::new(0),
        }
    }

    /// The file written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `state`, built as number `sequence`, unless a later one is on disk
    /// (blocking: fsync of the file and its directory).
    pub(crate) fn write(&self, sequence: u64, state: &SavedState) -> Result<(), PersistError> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if sequence <= *written {
            return Ok(());
        }
        save(&self.path, state)?;
        *written = sequence;
        Ok(())
    }
}

impl PersistError {
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
    fn agreed_primaries_survive_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = SavedState {
            version: STATE_VERSION,
            ..SavedState::default()
        };
        state
            .primaries
            .insert("db.example. A".into(), "db/b".into());
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().primaries, state.primaries);
        // Files written before primary records had none.
        let old: SavedState =
            serde_json::from_str(r#"{"version": 1, "saved_at_ms": 0, "endpoints": {}}"#).unwrap();
        assert!(old.primaries.is_empty());
    }

    #[test]
    fn history_counters_are_optional_both_ways() {
        // A file of an older version: no counters, read as zero.
        let old: SavedState = serde_json::from_str(
            r#"{"version": 1, "saved_at_ms": 5, "endpoints": {"web/a": {"state": "down", "changed_at_ms": 4}}}"#,
        )
        .unwrap();
        let a = old.endpoints["web/a"];
        assert_eq!((a.changes, a.downs, a.down_ms), (0, 0, 0));
        assert_eq!(old.counted_since_ms, None);
        // Zero counters are not written, so an older version reads what it knows.
        let text = serde_json::to_string(&old).unwrap();
        assert!(
            !text.contains("changes") && !text.contains("counted_since"),
            "{text}"
        );
    }

    #[test]
    fn an_older_state_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let writer = StateWriter::new(dir.path().join("state.json"));
        let state = |at| SavedState {
            version: STATE_VERSION,
            saved_at_ms: at,
            ..SavedState::default()
        };
        writer.write(2, &state(2)).unwrap();
        writer.write(1, &state(1)).unwrap();
        assert_eq!(load(writer.path()).unwrap().unwrap().saved_at_ms, 2);
        writer.write(3, &state(3)).unwrap();
        assert_eq!(load(writer.path()).unwrap().unwrap().saved_at_ms, 3);
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(load(&path).unwrap(), None);
        let mut state = SavedState {
            version: STATE_VERSION,
            saved_at_ms: 5,
            ..SavedState::default()
        };
        state.endpoints.insert(
            "web/a".into(),
            SavedEndpoint {
                state: HealthState::Down,
                changed_at_ms: 4,
                penalty: 1200.5,
                suppressed: true,
                changes: 7,
                downs: 4,
                down_ms: 90_000,
            },
        );
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        std::fs::write(&path, b"{garbage").unwrap();
        assert!(matches!(load(&path), Err(PersistError::Format { .. })));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }
}
