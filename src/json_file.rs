//! Small JSON files the server keeps across restarts (the health state file, the
//! zone serial file): read with a format version, written atomically.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a file could not be read or written; callers add the path and what file it is.
#[derive(Debug)]
pub(crate) enum JsonFileError {
    /// I/O failed.
    Io(std::io::Error),
    /// Not JSON of the expected shape, or another format version.
    Format(String),
}

/// Reads `path` as `T`; `Ok(None)` if it does not exist. `version(&T)` must be
/// `expected`.
pub(crate) fn load<T: DeserializeOwned>(
    path: &Path,
    version: impl Fn(&T) -> u32,
    expected: u32,
) -> Result<Option<T>, JsonFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JsonFileError::Io(e)),
    };
    let value: T =
        serde_json::from_slice(&bytes).map_err(|e| JsonFileError::Format(e.to_string()))?;
    let found = version(&value);
    if found != expected {
        return Err(JsonFileError::Format(format!(
            "version {found} (expected {expected})"
        )));
    }
    Ok(Some(value))
}

/// Writes `value` to `path` atomically: a temporary file in the same directory,
/// synced, renamed over the old one, and the directory synced, so a crash leaves the
/// old or the new file, never half of one.
pub(crate) fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), JsonFileError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(JsonFileError::Io)?;
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| JsonFileError::Format(e.to_string()))?;
    // A temporary file of its own (saves never share one), removed if anything fails.
    let mut file = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(JsonFileError::Io)?;
    file.write_all(&bytes).map_err(JsonFileError::Io)?;
    file.as_file().sync_all().map_err(JsonFileError::Io)?;
    file.persist(path).map_err(|e| JsonFileError::Io(e.error))?;
    let directory = std::fs::File::open(dir).map_err(JsonFileError::Io)?;
    directory.sync_all().map_err(JsonFileError::Io)?;
    Ok(())
}
