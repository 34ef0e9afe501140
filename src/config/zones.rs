//! `[zones]` → [`ZonesConfig`].

use std::collections::HashSet;
use std::path::PathBuf;

use super::ConfigSource;
use super::defaults::zones as defaults;
use super::diagnostics::KeyPath;
use super::spec::ZonesSpec;
use super::validate::Validator;

/// The `[zones]` section, validated.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ZonesConfig {
    /// Directory of the zone files (resolved against the config's directory).
    pub directory: PathBuf,
    /// Files to load, or `None` for every `*.zone` file in `directory`.
    pub files: Option<Vec<String>>,
    /// Whether the embedded zone files may stand in for a missing directory.
    pub use_embedded: bool,
}

impl Validator<'_> {
    pub(super) fn zones(&mut self, spec: &ZonesSpec, source: &ConfigSource) -> ZonesConfig {
        let root = KeyPath::root().key("zones");
        let directory = spec
            .directory
            .clone()
            .unwrap_or_else(|| defaults::DIRECTORY.to_owned());
        if let Some(files) = &spec.files {
            let mut seen = HashSet::new();
            for (i, file) in files.iter().enumerate() {
                if file.contains('/') || file.contains('\\') || file.is_empty() {
                    self.error(
                        root.key("files").index(i),
                        format!("{file:?} must be a file name inside `zones.directory`"),
                    );
                } else if !seen.insert(file) {
                    self.error(
                        root.key("files").index(i),
                        format!("{file:?} is listed twice"),
                    );
                }
            }
        }
        ZonesConfig {
            directory: source.base_dir.join(PathBuf::from(directory)),
            files: spec.files.clone(),
            use_embedded: source.is_embedded(),
        }
    }
}
