//! Files holding secrets (vantage secrets, admin tokens, the admin TLS key, TSIG
//! secrets, database passwords, DNSSEC private keys): refused when their mode lets
//! group or others read, write or execute them, with the `chmod` that fixes it.
//! On platforms without Unix modes only the read is checked.

use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SecretFileError {
    /// It could not be read (missing, no permission, …).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its mode lets group or others at it.
    #[error("{} {}", path.display(), exposed_problem(path, *mode))]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
}

impl SecretFileError {
    /// What is wrong, for a message that names the file already.
    pub(crate) fn problem(&self) -> String {
        match self {
            Self::Read { source, .. } => format!("cannot be read: {source}"),
            Self::Exposed { path, mode } => exposed_problem(path, *mode),
        }
    }
}

/// "has mode 0644: group or others can read it; run: chmod 600 PATH".
fn exposed_problem(path: &Path, mode: u32) -> String {
    format!(
        "has mode {mode:04o}: {}; run: chmod 600 {}",
        exposure(mode),
        shell_quote(path)
    )
}

/// Permission bits a secret file may not have: any for group or others.
pub(crate) const GROUP_OR_OTHER: u32 = 0o077;

/// What `mode` lets group and others do, in words.
fn exposure(mode: u32) -> &'static str {
    match (mode & 0o044 != 0, mode & 0o022 != 0) {
        (true, true) => "group or others can read and write it",
        (true, false) => "group or others can read it",
        (false, true) => "group or others can write it",
        (false, false) => "group or others have access to it",
    }
}

/// `path` as a shell word: as it is when it holds only characters no shell treats
/// specially, else in single quotes.
pub(crate) fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Checks that group and others have no access to `path` (its target, for a link).
pub(crate) fn check_mode(path: &Path) -> Result<(), SecretFileError> {
    let metadata = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & GROUP_OR_OTHER != 0 {
            return Err(SecretFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    Ok(())
}

/// The bytes of a secret file whose mode [`check_mode`] accepts.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    check_mode(path)?;
    std::fs::read(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// [`read`] as text.
pub(crate) fn read_to_string(path: &Path) -> Result<String, SecretFileError> {
    check_mode(path)?;
    std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn file_with_mode(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "s3cret-s3cret-s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn only_owner_modes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400, 0o700] {
            let path = file_with_mode(dir.path(), "ok", mode);
            assert_eq!(read_to_string(&path).unwrap(), "s3cret-s3cret-s3cret\n");
        }
        for (mode, words) in [
            (0o644, "group or others can read it"),
            (0o640, "group or others can read it"),
            (0o604, "group or others can read it"),
            (0o620, "group or others can write it"),
            (0o666, "group or others can read and write it"),
            (0o610, "group or others have access to it"),
        ] {
            let path = file_with_mode(dir.path(), "exposed", mode);
            let error = read(&path).unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "{} has mode {mode:04o}: {words}; run: chmod 600 {}",
                    path.display(),
                    path.display()
                )
            );
        }
    }

    #[test]
    fn the_printed_fix_runs_as_printed_and_then_the_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), "it's a token", 0o644);
        let error = check_mode(&path).unwrap_err().to_string();
        let command = error.split_once("; run: ").unwrap().1;
        assert!(command.ends_with(r"it'\''s a token'"), "{command}");
        let status = std::process::Command::new("sh")
            .args(["-c", command])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(read(&path).is_ok());
    }

    #[test]
    fn a_missing_file_says_so() {
        let error = read(Path::new("/nonexistent/secret")).unwrap_err();
        assert!(matches!(error, SecretFileError::Read { .. }));
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/secret: "),
            "{error}"
        );
    }
}
