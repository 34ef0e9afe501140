//! The one duration grammar of the configuration (and of the CLI flags that take a
//! duration): humantime's, e.g. `250ms`, `2s`, `1m30s`, `1.5h`, `14d`, `2 days`.
//!
//! Every duration key of the file is a [`DurationSpec`]; it keeps the text as written
//! and is parsed during validation, so that a bad duration is reported at its key path
//! beside every other finding of its section (a serde error would drop the section).

use std::time::Duration;

use serde::Deserialize;

/// A duration as written in the file (`"30s"`), parsed by [`parse_duration`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct DurationSpec(String);

/// Shown as the quoted text, as messages quote a duration (`"1500ms"`).
impl std::fmt::Debug for DurationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&str> for DurationSpec {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl std::ops::Deref for DurationSpec {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Parses a duration such as `250ms`, `2s`, `1m30s`, `1.5h` or `14d` (humantime's
/// grammar; surrounding blanks are ignored).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    humantime::parse_duration(text).map_err(|error| match error {
        humantime::DurationError::Empty => "empty duration".to_owned(),
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("missing unit in {text:?} (ms, s, m or h)")
        }
        humantime::DurationError::UnknownUnit { unit, .. } => {
            format!("unknown unit {unit:?} in {text:?} (ms, s, m or h)")
        }
        humantime::DurationError::NumberOverflow => format!("number too large in {text:?}"),
        humantime::DurationError::InvalidCharacter(_)
        | humantime::DurationError::NumberExpected(_) => {
            format!("invalid duration {text:?} (expected e.g. 250ms, 2s, 1m)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_humantimes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 1m30s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(
            parse_duration("2 days"),
            Ok(Duration::from_secs(2 * 86_400))
        );
    }

    #[test]
    fn errors_keep_their_wording() {
        assert_eq!(parse_duration(""), Err("empty duration".to_owned()));
        assert_eq!(
            parse_duration("5"),
            Err("missing unit in \"5\" (ms, s, m or h)".to_owned())
        );
        assert_eq!(
            parse_duration("5q"),
            Err("unknown unit \"q\" in \"5q\" (ms, s, m or h)".to_owned())
        );
        assert_eq!(
            parse_duration("x"),
            Err("invalid duration \"x\" (expected e.g. 250ms, 2s, 1m)".to_owned())
        );
        assert_eq!(
            parse_duration("-1s"),
            Err("invalid duration \"-1s\" (expected e.g. 250ms, 2s, 1m)".to_owned())
        );
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err("number too large in \"99999999999999999999s\"".to_owned())
        );
    }
}
