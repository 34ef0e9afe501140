//! The plane's side of operator overrides: made here or merged from peers, they take
//! effect in the next decision, are saved at once and shared with the peers.

use std::sync::Arc;

use tokio::time::Instant;

use super::Plane;
use crate::health::overrides::{Entry, check_entry};
use crate::probe::reporter::unix_ms;
use crate::telemetry::events::EventLog;

impl Plane {
    /// Merges a peer's entries (its signature and standing checked): each is checked
    /// like an operator's request (known target, sane text, a stamp not from the
    /// future); the refused are counted and logged, never adopted. Logs those that
    /// changed ours.
    pub(super) async fn merge_overrides(&mut self, from: &str, entries: Vec<Entry>) {
        let now_ms = unix_ms();
        let mut accepted = Vec::with_capacity(entries.len());
        for entry in entries {
            match check_entry(&entry, Some(&self.config), now_ms) {
                Ok(()) => accepted.push(entry),
                Err(refusal) => {
                    if let Some(counter) = self.metrics.entries_refused.get(refusal.label()) {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    tracing::warn!(
                        peer = from,
                        on = %entry.target,
                        origin = ?entry.stamp.origin,
                        why = %refusal,
                        "override from a peer refused"
                    );
                }
            }
        }
        let mut tentative = self.overrides.clone();
        let changed = tentative.merge(accepted);
        if changed.is_empty() {
            return;
        }
        // Adopted only once on disk: what a server shows is what it would restart with.
        if let Err(why) = self.save_overrides(&tentative).await {
            tracing::warn!(peer = from, %why, "overrides from a peer not taken: the state file cannot be written");
            return;
        }
        self.overrides = tentative;
        for entry in &changed {
            log_entry(&self.events, entry, &format!("from {from}"));
        }
        self.overrides_changed();
    }

    /// Ends the overrides whose time is up.
    pub(super) fn expire_overrides(&mut self) {
        let now_ms = unix_ms();
        let effects = self.overrides.effects(&self.config, now_ms);
        if effects == self.effects {
            return;
        }
        for entry in self.overrides.entries() {
            if entry.action.is_some() && entry.expires_at_ms.is_some_and(|at| at <= now_ms) {
                crate::event!(
                    self.events,
                    info,
                    "override_expired",
                    "operator override expired",
                    on = entry.target,
                    by = entry.by,
                    reason = entry.reason,
                );
            }
        }
        self.overrides_changed();
    }

    /// Rebuilds status when an override comes to be in force longer than
    /// `[health] override_warn_after` (status calls it out from then on).
    pub(super) fn note_old_overrides(&mut self) {
        let limit = self.config.health.override_warn_after.as_millis() as u64;
        let now_ms = unix_ms();
        let old = if limit == 0 {
            0
        } else {
            self.overrides
                .active(now_ms)
                .filter(|e| now_ms.saturating_sub(e.at_ms) > limit)
                .count()
        };
        if old != self.old_overrides {
            self.old_overrides = old;
            self.dirty = true;
        }
    }

    /// Takes the current overrides' effect and shares them (saved by whoever changed
    /// the set).
    pub(super) fn overrides_changed(&mut self) {
        let now_ms = unix_ms();
        self.overrides.collect_garbage(now_ms);
        self.effects = self.overrides.effects(&self.config, now_ms);
        self.board.set_forced(&self.effects.forced);
        self.board.invalidate();
        self.pending(Instant::now());
        self.dirty = true;
        self.overrides_tx
            .send_replace(Arc::new(self.overrides.entries().cloned().collect()));
    }
}

pub(super) fn log_entry(events: &EventLog, entry: &Entry, how: &str) {
    match &entry.action {
        Some(action) => crate::event!(
            events,
            warn,
            "override",
            ("operator override ({how})"),
            on = entry.target,
            action = action,
            by = entry.by,
            reason = entry.reason,
            expires_at_ms = entry
                .expires_at_ms
                .map_or_else(|| "never".to_owned(), |ms| ms.to_string()),
            expires = entry.expires_at_ms.map_or_else(
                || "never (until released)".to_owned(),
                |ms| humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
                )
                .to_string()
            ),
            origin = entry.stamp.origin,
        ),
        None => crate::event!(
            events,
            info,
            "override_released",
            ("operator override released ({how})"),
            on = entry.target,
            by = entry.by,
            reason = entry.reason,
            origin = entry.stamp.origin,
        ),
    }
}
