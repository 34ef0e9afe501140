//! The event log: a bounded ring of recent events (health, overrides with who and
//! why, reloads, isolation, answer changes) that `/v1/events` serves and streams.
//! Every event is also logged through `tracing` (target `failoverd::event`), with
//! the same fields.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::probe::reporter::unix_ms;

/// Events kept.
pub const EVENTS_KEPT: usize = 1000;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number (increases by one per event, from 1, per process).
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// What happened: `endpoint`, `pool`, `record`, `override`, `reload`, `isolated`, …
    pub kind: String,
    /// In words.
    pub message: String,
    /// Its details.
    pub fields: BTreeMap<String, String>,
}

/// The ring and its live subscribers.
#[derive(Debug)]
pub struct EventLog {
    ring: Mutex<(u64, VecDeque<Event>)>,
    live: broadcast::Sender<Event>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            ring: Mutex::new((0, VecDeque::with_capacity(EVENTS_KEPT))),
            live: broadcast::channel(256).0,
        }
    }
}

impl EventLog {
    /// Records an event (the caller logs it too; see [`crate::service::event`]).
    pub fn record(&self, level: &str, kind: &str, message: String, fields: Vec<(&str, String)>) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.0 += 1;
        let event = Event {
            seq: ring.0,
            at_ms: unix_ms(),
            level: level.to_owned(),
            kind: kind.to_owned(),
            message,
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        if ring.1.len() == EVENTS_KEPT {
            ring.1.pop_front();
        }
        ring.1.push_back(event.clone());
        let _ = self.live.send(event);
    }

    /// Events after `since` (sequence number), the newest `limit` of them.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newer: Vec<&Event> = ring.1.iter().filter(|e| e.seq > since).collect();
        newer[newer.len().saturating_sub(limit)..]
            .iter()
            .map(|e| (*e).clone())
            .collect()
    }

    /// Events from now on (a subscriber that falls behind by more than 256 events
    /// misses some; it sees the gap in the sequence numbers).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}

/// Logs an event through `tracing` and records it in an [`EventLog`]:
/// `event!(log, info, "kind", "message", key = value, ...)`; values are shown with
/// `Display`, control characters escaped in the log ([`crate::logs::Escaped`]; the
/// event log keeps them as they are, and its JSON escapes them). The message may be a format string with arguments in a tuple:
/// `event!(log, warn, "kind", ("{} of {}", a, b), key = value)`.
#[macro_export]
#[doc(hidden)]
macro_rules! event {
    ($log:expr, $level:ident, $kind:literal, ($($msg:tt)+) $(, $key:ident = $value:expr)* $(,)?) => {{
        let message = format!($($msg)+);
        $crate::event!(@emit $log, $level, $kind, message $(, $key = $value)*)
    }};
    ($log:expr, $level:ident, $kind:literal, $msg:literal $(, $key:ident = $value:expr)* $(,)?) => {{
        let message = String::from($msg);
        $crate::event!(@emit $log, $level, $kind, message $(, $key = $value)*)
    }};
    (@emit $log:expr, $level:ident, $kind:literal, $message:ident $(, $key:ident = $value:expr)*) => {{
        // Every value is taken before any is named (a value may use a name a key
        // shadows).
        #[allow(unused_parens)]
        let ($($key),*) = ($(&$value),*);
        // Escaped: a field may come from the network (an override's reason, a peer's
        // name) and must not end the line, forge another or drive a terminal.
        tracing::$level!(
            target: "failoverd::event",
            event = $kind,
            $($key = %$crate::logs::Escaped($key),)*
            "{}",
            $crate::logs::Escaped(&$message)
        );
        $log.record(stringify!($level), $kind, $message, vec![$((stringify!($key), $key.to_string()),)*]);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_numbers_them() {
        let log = EventLog::default();
        let mut live = log.subscribe();
        crate::event!(log, info, "test", "first");
        assert_eq!(live.try_recv().unwrap().message, "first");
        for i in 1..EVENTS_KEPT + 5 {
            crate::event!(log, info, "test", ("event {}", i), n = i);
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), EVENTS_KEPT);
        assert_eq!(all[0].seq, 6);
        assert_eq!(
            all.last().unwrap().fields["n"],
            (EVENTS_KEPT + 4).to_string()
        );
        assert_eq!(log.since(EVENTS_KEPT as u64 + 3, 10).len(), 2);
        assert_eq!(log.since(0, 3).len(), 3);
    }

    /// What a `fmt` subscriber writes, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_forged_field_stays_on_its_line_escaped_in_text_and_json() {
        let reason = "x\n2026-01-01T00:00:00Z  INFO forged \x1b[31mred\0\u{2028}end";
        for json in [false, true] {
            let out = Captured::default();
            let writer = out.clone();
            let builder = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone());
            let log = EventLog::default();
            let emit = || {
                crate::event!(
                    log,
                    warn,
                    "override",
                    ("operator override ({})", reason),
                    by = reason,
                    reason = reason
                );
            };
            if json {
                tracing::subscriber::with_default(builder.json().finish(), emit);
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(
                !text.trim_end().chars().any(crate::logs::needs_escape),
                "{text:?}"
            );
            assert_eq!(text.matches("forged").count(), 3, "{text}");
            if json {
                let line: serde_json::Value = serde_json::from_str(&text).unwrap();
                let shown = r"x\n2026-01-01T00:00:00Z  INFO forged \u{1b}[31mred\0\u{2028}end";
                assert_eq!(line["fields"]["reason"], shown, "{text}");
                assert_eq!(line["fields"]["by"], shown, "{text}");
            } else {
                assert!(
                    text.contains(
                        r"reason=x\n2026-01-01T00:00:00Z  INFO forged \u{1b}[31mred\0\u{2028}end"
                    ),
                    "{text}"
                );
            }
            // The event log keeps the value as it came (its JSON escapes it).
            assert_eq!(log.since(0, 1)[0].fields["reason"], reason);
        }
    }
}
