//! What a scenario measured (one `FIGURES` line, printed before anything is
//! asserted, so a run against an older binary still yields its figures) and what it
//! found wrong (collected, then asserted all at once).
//!
//! The line goes to stderr (shown for passing tests only with `--nocapture`) and,
//! when `FAILOVERD_FIGURES` names a file, is appended to that file too.

use std::fmt::Display;
use std::time::Duration;

/// The figures of one scenario, printed as `FIGURES scenario=NAME key=value …`.
pub struct Figures {
    scenario: String,
    values: Vec<(String, String)>,
    printed: bool,
}

impl Figures {
    /// Figures of `scenario` (the flavour is added).
    pub fn new(scenario: &str) -> Self {
        let mut figures = Self {
            scenario: scenario.to_owned(),
            values: Vec::new(),
            printed: false,
        };
        figures.set("flavour", super::config::Flavour::from_env().name());
        figures
    }

    /// Sets `key` to `value` (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: impl Display) {
        let value = value.to_string().replace(' ', "_");
        match self.values.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.values.push((key.to_owned(), value)),
        }
    }

    /// Sets `key` to a time in milliseconds, or `-` when it never happened.
    pub fn set_ms(&mut self, key: &str, value: Option<Duration>) {
        match value {
            Some(d) => self.set(key, d.as_millis()),
            None => self.set(key, "-"),
        }
    }

    /// Prints the line (to stderr, and to `$FAILOVERD_FIGURES` if set).
    pub fn print(&mut self) {
        let mut line = format!("FIGURES scenario={}", self.scenario);
        for (key, value) in &self.values {
            line.push_str(&format!(" {key}={value}"));
        }
        eprintln!("{line}");
        if let Some(path) = std::env::var_os("FAILOVERD_FIGURES") {
            use std::io::Write;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            if let Ok(mut file) = file {
                let _ = file.write_all(format!("{line}\n").as_bytes());
            }
        }
        self.printed = true;
    }
}

impl Drop for Figures {
    /// A scenario that stopped early (a precondition failed) still prints what it had.
    fn drop(&mut self) {
        if !self.printed {
            self.set("incomplete", true);
            self.print();
        }
    }
}

/// Expectations of a scenario, checked without stopping it.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Records `message` as a failure unless `condition` holds.
    pub fn expect(&mut self, condition: bool, message: impl Into<String>) {
        if !condition {
            self.failures.push(message.into());
        }
    }

    /// Panics with every failure recorded (call after printing the figures).
    pub fn assert_all(&self) {
        assert!(
            self.failures.is_empty(),
            "{} expectation(s) failed:\n  - {}",
            self.failures.len(),
            self.failures.join("\n  - ")
        );
    }
}
