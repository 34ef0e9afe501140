//! Errors and warnings found in a configuration, each with its key path and line.

use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One segment of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a value sits in the configuration, e.g. `pools.web-eu.endpoints[1].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The empty path (the document root).
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The segments, outermost first.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Appends a path reported by `serde_path_to_error` (relative to this one).
    pub(crate) fn join_serde(&self, inner: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut path = self.clone();
        for segment in inner.iter() {
            match segment {
                S::Seq { index } => path.0.push(Segment::Index(*index)),
                S::Map { key } | S::Enum { variant: key } => path.0.push(Segment::Key(key.clone())),
                S::Unknown => {}
            }
        }
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The configuration works but is probably not what was meant.
    Warning,
}

/// One finding about a configuration.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File the finding is about (the config file, or a zone file).
    pub file: Option<PathBuf>,
    /// 1-based line in `file`, where known.
    pub line: Option<usize>,
    /// Key path in the config, when the finding is about a config key.
    pub path: Option<KeyPath>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })?;
        f.write_str(": ")?;
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every error and warning found while loading a configuration.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Diagnostics {
    /// Findings that make the configuration unusable.
    pub errors: Vec<Diagnostic>,
    /// Findings that do not.
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records an error at a key path.
    pub(crate) fn error(&mut self, path: KeyPath, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            severity: Severity::Error,
            file: None,
            line: None,
            path: Some(path),
            message: message.into(),
        });
    }

    /// Records a warning at a key path.
    pub(crate) fn warning(&mut self, path: KeyPath, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            severity: Severity::Warning,
            file: None,
            line: None,
            path: Some(path),
            message: message.into(),
        });
    }

    /// Records a finding that is not about a config key (a zone file, say).
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        match diagnostic.severity {
            Severity::Error => self.errors.push(diagnostic),
            Severity::Warning => self.warnings.push(diagnostic),
        }
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Moves every finding of `other` into `self`.
    pub(crate) fn extend(&mut self, other: Self) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    /// Fills in the file and, from the TOML text, the line of every finding that has a
    /// key path but no location yet.
    pub(crate) fn locate(&mut self, file: Option<&PathBuf>, text: &str) {
        let (root, _) = DeTable::parse_recoverable(text);
        for diagnostic in self.errors.iter_mut().chain(self.warnings.iter_mut()) {
            if diagnostic.file.is_some() {
                continue;
            }
            diagnostic.file = file.cloned();
            if diagnostic.line.is_none() {
                if let Some(path) = &diagnostic.path {
                    diagnostic.line = line_of_path(root.get_ref(), path, text);
                }
            }
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in self.errors.iter().chain(&self.warnings) {
            writeln!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Deserializes the value at `path`; a shape error (unknown key, wrong type, missing
/// key) is returned as a diagnostic at the key path serde names, on the line of the
/// value it is about (in `text`).
pub(crate) fn deserialize_at<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &KeyPath,
    text: &str,
) -> Result<T, Diagnostic> {
    let span = value.span();
    let deserializer = toml::de::ValueDeserializer::from(value);
    serde_path_to_error::deserialize::<_, T>(deserializer).map_err(|error| {
        let full_path = path.join_serde(error.path());
        let inner = error.into_inner();
        let offset = inner.span().map_or(span.start, |s| s.start);
        Diagnostic {
            severity: Severity::Error,
            file: None,
            line: Some(line_of_offset(text, offset)),
            path: Some(full_path),
            message: inner.message().trim().to_owned(),
        }
    })
}

/// 1-based line of a byte offset.
pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line of the deepest value along `path` that exists in the document.
fn line_of_path(root: &DeTable<'_>, path: &KeyPath, text: &str) -> Option<usize> {
    let mut span = None;
    let mut table = Some(root);
    let mut value: Option<&DeValue<'_>> = None;
    for segment in path.segments() {
        let next = match (segment, table, value) {
            (Segment::Key(key), Some(t), _) => t.get(key.as_str()),
            (Segment::Index(i), _, Some(DeValue::Array(array))) => array.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = Some(next.span());
        value = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span.map(|s| line_of_offset(text, s.start))
}
