//! The event log: a bounded ring of recent events (health, overrides with who and
//! why, reloads, isolation, answer changes) that `/v1/events` serves and streams.
//! Every event is also logged through `tracing` (target `failoverd::event`), with
//! the same fields.
//!
//! With a state file, every event is also appended to a **journal** beside it
//! (`<state_file>.events.jsonl`, one JSON event per line) by a thread of its own, so
//! history survives a restart: at start the ring is refilled from the journal and
//! sequence numbers carry on. The journal is capped: past [`JOURNAL_MAX_BYTES`] the
//! file becomes `….events.jsonl.1` (replacing the older one) and a new one starts, so
//! at most twice that is kept. A line is written at once but not fsynced: a crash of
//! the process loses nothing, a power loss may lose the last lines.
//!
//! ```text
//!  event!() ─▶ ring (1,000, memory) ─▶ /v1/events?since=SEQ, follow=true
//!           └▶ queue (4,096) ─▶ journal thread ─▶ events.jsonl ─▶ /v1/events?since_time=
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::runtime::clock::unix_ms;

/// Events kept in memory.
pub(crate) const EVENTS_KEPT: usize = 1000;

/// Size past which the journal file is rotated (two files are kept).
pub(crate) const JOURNAL_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Events waiting for the journal thread; beyond, events are dropped from the
/// journal (and counted), never from the ring.
const JOURNAL_QUEUE: usize = 4096;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    /// Sequence number (increases by one per event, from 1; with a journal it
    /// carries on across restarts).
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
pub(crate) struct EventLog {
    ring: Mutex<(u64, VecDeque<Event>)>,
    live: broadcast::Sender<Event>,
    journal: Option<Journal>,
}

/// The journal's side in the log: where it is and the queue to its thread.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    queue: mpsc::SyncSender<Message>,
    /// Events not written (queue full, write failed, or paused).
    dropped: std::sync::Arc<AtomicU64>,
    /// A replacing process owns the journal: nothing more is written.
    paused: AtomicBool,
}

/// What the journal thread is asked to do.
enum Message {
    /// Append this event.
    Write(Event),
    /// Say when everything before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            ring: Mutex::new((0, VecDeque::with_capacity(EVENTS_KEPT))),
            live: broadcast::channel(256).0,
            journal: None,
        }
    }
}

/// Why the journal cannot be used (the log then keeps events in memory only).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum JournalError {
    /// Reading or opening the journal failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl EventLog {
    /// A log that also appends every event to the journal at `path`: the ring is
    /// refilled with the newest events already there, and numbering carries on
    /// after the last one.
    pub(crate) fn with_journal(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let past = read_journal(path, 0, EVENTS_KEPT).map_err(io)?;
        let last = past.last().map_or(0, |e| e.seq);
        // Writable now (it is opened again for each batch).
        drop(open_append(path).map_err(io)?);
        let (queue, jobs) = mpsc::sync_channel(JOURNAL_QUEUE);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        let writer = Writer {
            path: path.to_owned(),
            dropped: dropped.clone(),
            failing: false,
        };
        std::thread::Builder::new()
            .name("event-journal".to_owned())
            .spawn(move || writer.run(jobs))
            .map_err(io)?;
        Ok(Self {
            ring: Mutex::new((last, past.into())),
            live: broadcast::channel(256).0,
            journal: Some(Journal {
                path: path.to_owned(),
                queue,
                dropped,
                paused: AtomicBool::new(false),
            }),
        })
    }

    /// Records an event (the caller logs it too; see [`crate::event`]).
    pub(crate) fn record(
        &self,
        level: &str,
        kind: &str,
        message: String,
        fields: Vec<(&str, String)>,
    ) {
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
        // Queued in order under the lock; never waits for the disk.
        if let Some(journal) = &self.journal {
            let written = !journal.paused.load(Ordering::Relaxed)
                && journal
                    .queue
                    .try_send(Message::Write(event.clone()))
                    .is_ok();
            if !written {
                journal.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = self.live.send(event);
    }

    /// Events after `since` (sequence number), the newest `limit` of them.
    pub(crate) fn since(&self, since: u64, limit: usize) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newer: Vec<&Event> = ring.1.iter().filter(|e| e.seq > since).collect();
        newer[newer.len().saturating_sub(limit)..]
            .iter()
            .map(|e| (*e).clone())
            .collect()
    }

    /// Events at or after `since_ms` (Unix milliseconds), the newest `limit` of them:
    /// from memory while the ring reaches back that far, else from the journal
    /// (blocking: call it off the async workers).
    pub(crate) fn since_time(&self, since_ms: u64, limit: usize) -> Vec<Event> {
        let Some(journal) = &self.journal else {
            return self.since_time_in_memory(since_ms, limit);
        };
        let covered = {
            let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            // A ring not yet full holds everything since the journal began.
            ring.1.len() < EVENTS_KEPT || ring.1.front().is_some_and(|e| e.at_ms < since_ms)
        };
        if covered {
            return self.since_time_in_memory(since_ms, limit);
        }
        read_journal(&journal.path, since_ms, limit).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the event journal; answering from memory");
            self.since_time_in_memory(since_ms, limit)
        })
    }

    fn since_time_in_memory(&self, since_ms: u64, limit: usize) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newer: Vec<Event> = ring
            .1
            .iter()
            .filter(|e| e.at_ms >= since_ms)
            .cloned()
            .collect();
        newer[newer.len().saturating_sub(limit)..].to_vec()
    }

    /// Events from now on (a subscriber that falls behind by more than 256 events
    /// misses some; it sees the gap in the sequence numbers).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Events not written to the journal (queue full, a write failed, or paused for
    /// a replacing process).
    pub(crate) fn journal_dropped(&self) -> u64 {
        self.journal
            .as_ref()
            .map_or(0, |j| j.dropped.load(Ordering::Relaxed))
    }

    /// Stops writing the journal (a replacing process takes it over) once everything
    /// queued is on disk, or resumes it (`false`: the replacement failed).
    pub(crate) async fn pause_journal(&self, paused: bool) {
        let Some(journal) = &self.journal else {
            return;
        };
        if paused {
            {
                // Under the ring's lock: no event is queued after this.
                let _ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
                journal.paused.store(true, Ordering::Relaxed);
            }
            self.flush_journal().await;
        } else {
            journal.paused.store(false, Ordering::Relaxed);
        }
    }

    /// Waits until every event recorded so far is written to the journal (at
    /// shutdown; nothing to wait for without one).
    pub(crate) async fn flush_journal(&self) {
        let Some(journal) = &self.journal else {
            return;
        };
        let (done, written) = tokio::sync::oneshot::channel();
        // After every event queued before (waiting for room if the queue is full).
        let queue = journal.queue.clone();
        let sent = tokio::task::spawn_blocking(move || queue.send(Message::Flush(done)).is_ok())
            .await
            .unwrap_or(false);
        if sent {
            let _ = written.await;
        }
    }
}

/// Where the journal of a state file is kept: `<state_file>.events.jsonl`.
pub(crate) fn journal_path(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".events.jsonl");
    PathBuf::from(name)
}

/// The rotated journal beside `path`.
fn older(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Opens the journal for appending; a new file is readable by this user only, like
/// the state file beside it (events hold who made an override and why).
fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Events in the journal at `path` (and the rotated file before it) at or after
/// `since_ms`, in order, the newest `limit` of them. Lines that do not parse (a line
/// cut short by a crash) are skipped.
pub(crate) fn read_journal(
    path: &Path,
    since_ms: u64,
    limit: usize,
) -> std::io::Result<Vec<Event>> {
    let mut events: VecDeque<Event> = VecDeque::new();
    let mut last = 0;
    for file in [older(path), path.to_owned()] {
        let file = match std::fs::File::open(&file) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in std::io::BufReader::new(file).split(b'\n') {
            let Ok(event) = serde_json::from_slice::<Event>(&line?) else {
                continue;
            };
            // In order, each once (a read racing a rotation may see one twice).
            if event.seq <= last || event.at_ms < since_ms {
                continue;
            }
            last = event.seq;
            if events.len() == limit {
                events.pop_front();
            }
            if limit > 0 {
                events.push_back(event);
            }
        }
    }
    Ok(events.into())
}

/// The journal thread's state. The file is opened for each batch of events and
/// closed after it: no descriptor stays open on the state directory between events
/// (a directory remounted read-only, a file rotated or taken over by a replacing
/// process, is seen at the next batch).
struct Writer {
    path: PathBuf,
    dropped: std::sync::Arc<AtomicU64>,
    /// The last batch failed (the error is logged once until one succeeds).
    failing: bool,
}

impl Writer {
    /// Writes what comes until the log is dropped: every event waiting goes into
    /// one batch, written and flushed before the next wait.
    fn run(mut self, jobs: mpsc::Receiver<Message>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = Vec::new();
            let mut flushed = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Write(event) => batch.push(event),
                    Message::Flush(done) => flushed.push(done),
                }
                next = jobs.try_recv().ok();
            }
            if !batch.is_empty() {
                let written = self.write(&batch);
                self.note(batch.len(), written);
            }
            for done in flushed {
                let _ = done.send(());
            }
        }
    }

    /// Counts and logs a failed batch (`lost`: its events, some of which may have
    /// been written before the failure).
    fn note(&mut self, lost: usize, result: std::io::Result<()>) {
        match result {
            Ok(()) => {
                if std::mem::replace(&mut self.failing, false) {
                    tracing::info!(path = %self.path.display(), "the event journal is written again");
                }
            }
            Err(error) => {
                self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!(path = %self.path.display(), %error, "cannot write the event journal; events are kept in memory only until it can");
                }
            }
        }
    }

    /// Appends `events`, rotating the file when it would pass [`JOURNAL_MAX_BYTES`].
    fn write(&self, events: &[Event]) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(open_append(&self.path)?);
        let mut size = file.get_ref().metadata()?.len();
        for event in events {
            let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
            line.push(b'\n');
            if size > 0 && size + line.len() as u64 > JOURNAL_MAX_BYTES {
                file.flush()?;
                std::fs::rename(&self.path, older(&self.path))?;
                file = std::io::BufWriter::new(open_append(&self.path)?);
                size = 0;
            }
            file.write_all(&line)?;
            size += line.len() as u64;
        }
        file.flush()
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

    #[tokio::test]
    async fn the_journal_keeps_history_across_restarts_rotated_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("state.json"));
        assert!(path.ends_with("state.json.events.jsonl"));
        let log = EventLog::with_journal(&path).unwrap();
        for i in 0..10 {
            crate::event!(log, info, "test", ("event {}", i), n = i);
        }
        log.flush_journal().await;
        let first_at = log.since(0, usize::MAX)[0].at_ms;
        drop(log);
        // A torn last line (a crash mid-write) is skipped.
        let mut file = open_append(&path).unwrap();
        file.write_all(br#"{"seq": 11, "at_ms": 1, "lev"#).unwrap();
        drop(file);
        let log = EventLog::with_journal(&path).unwrap();
        let restored = log.since(0, usize::MAX);
        assert_eq!(restored.len(), 10, "the ring is refilled");
        crate::event!(log, info, "test", "after the restart");
        assert_eq!(log.since(10, 10)[0].seq, 11, "numbering carries on");
        // By time: everything since the first event, from memory or disk alike.
        assert_eq!(log.since_time(first_at, usize::MAX).len(), 11);
        assert_eq!(log.since_time(first_at, 3).len(), 3);
        assert!(log.since_time(u64::MAX, 10).is_empty());
        log.flush_journal().await;

        // Past the cap the file rotates; at most two files, older events gone.
        let big = "x".repeat(2000);
        let count = 2 * JOURNAL_MAX_BYTES as usize / 2000 + 500;
        for i in 0..count {
            crate::event!(log, info, "bulk", ("bulk {}", i), pad = big);
            if i % 1000 == 0 {
                log.flush_journal().await; // the queue holds 4,096
            }
        }
        log.flush_journal().await;
        assert_eq!(log.journal_dropped(), 0);
        let sizes: Vec<u64> = [older(&path), path.clone()]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        use std::os::unix::fs::PermissionsExt as _;
        for file in [older(&path), path.clone()] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        assert!(sizes.iter().all(|&s| s <= JOURNAL_MAX_BYTES), "{sizes:?}");
        let on_disk = read_journal(&path, 0, usize::MAX).unwrap();
        assert!(
            on_disk.len() < count && on_disk.len() > count / 4,
            "{}",
            on_disk.len()
        );
        assert_eq!(on_disk.last().unwrap().seq, 11 + count as u64);
        assert!(
            on_disk.windows(2).all(|w| w[1].seq == w[0].seq + 1),
            "in order, none missing"
        );
        // The oldest events were rotated out of the journal.
        assert!(log.since_time(first_at, usize::MAX)[0].seq > 11);
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
