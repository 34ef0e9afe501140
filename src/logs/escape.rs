//! Escaping control characters in logged values.

use std::fmt::{self, Write as _};

/// Shows a value (through its `Display`) with every character [`needs_escape`]
/// escaped the way Rust's `Debug` spells it (`\n`, `\r`, `\t`, `\0`, `\u{1b}`),
/// without quotes; everything else, backslashes included, is shown as it is. Writes
/// straight into the formatter: no allocation.
#[derive(Clone, Copy)]
pub(crate) struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter { inner: f }, "{}", self.0)
    }
}

impl<T: fmt::Display> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether `c` could end a log line, start a forged one or drive a terminal: the C0
/// and C1 controls and DEL, the Unicode line and paragraph separators, and the
/// bidirectional formatting characters (which reorder what a reader sees).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Passes runs of harmless characters through and escapes the others.
struct EscapingWriter<'a, 'b> {
    inner: &'a mut fmt::Formatter<'b>,
}

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.inner.write_str(&s[start..i])?;
            match c {
                '\n' => self.inner.write_str("\\n")?,
                '\r' => self.inner.write_str("\\r")?,
                '\t' => self.inner.write_str("\\t")?,
                '\0' => self.inner.write_str("\\0")?,
                c => write!(self.inner, "\\u{{{:x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        self.inner.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_separators_are_escaped_like_debug() {
        let forged = "kernel upgrade\n2026-01-01T00:00:00Z  INFO forged\r\x1b[31mred\0\x07\u{85}\u{9b}\x7f\u{2028}\u{2029}\u{202e}\t";
        let shown = Escaped(forged).to_string();
        assert_eq!(
            shown,
            "kernel upgrade\\n2026-01-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\0\\u{7}\\u{85}\\u{9b}\\u{7f}\\u{2028}\\u{2029}\\u{202e}\\t"
        );
        assert!(!shown.chars().any(needs_escape));
        // Each escape is spelled as Rust's Debug spells it (between its quotes).
        for c in ['\n', '\u{1b}', '\0', '\u{2028}', '\u{9b}', '\u{202e}'] {
            let debug = format!("{:?}", c.to_string());
            assert_eq!(Escaped(c).to_string(), debug[1..debug.len() - 1]);
        }
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in [
            "",
            "drain eu/web-1",
            "ünïcödé ok → 日本語 🙂",
            "C:\\path \"quoted\" 'single'",
        ] {
            assert_eq!(Escaped(text).to_string(), text);
        }
        assert_eq!(format!("{:?}", Escaped("a\nb")), "a\\nb");
        assert_eq!(Escaped(42).to_string(), "42");
    }
}
