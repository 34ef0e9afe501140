//! The plane's side of operator overrides: made here or merged from peers, they take
//! effect in the next decision, are saved at once and shared with the peers.

use std::sync::Arc;

use tokio::time::Instant;

use super::Plane;
use crate::health::HealthSnapshot;
use crate::health::overrides::{Change, Entry, OverrideError};
use crate::probe::reporter::unix_ms;
use crate::service::events::EventLog;

impl Plane {
    /// Makes an operator's change on this server.
    pub(super) fn change_override(&mut self, change: Change) -> Result<Entry, OverrideError> {
        let origin = self.board.local_name().to_owned();
        let entry = self
            .overrides
            .apply(change, &self.config, &origin, unix_ms())?;
        log_entry(&self.events, &entry, "made here");
        self.overrides_changed();
        Ok(entry)
    }

    /// Merges a peer's entries (its signature checked); logs those that changed ours.
    pub(super) fn merge_overrides(&mut self, from: &str, entries: Vec<Entry>) {
        let changed = self.overrides.merge(entries);
        if changed.is_empty() {
            return;
        }
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

    /// Takes the current overrides' effect, saves and shares them.
    fn overrides_changed(&mut self) {
        let now_ms = unix_ms();
        self.overrides.collect_garbage(now_ms);
        self.effects = self.overrides.effects(&self.config, now_ms);
        self.board.set_forced(&self.effects.forced);
        self.board.invalidate();
        self.pending(Instant::now());
        self.dirty = true;
        self.overrides_tx
            .send_replace(Arc::new(self.overrides.entries().cloned().collect()));
        self.save_state(); // at once: an operator's change must survive a crash
    }

    /// A decision's health with the operator's drains and manual failovers.
    pub(super) fn with_overrides(&self, health: HealthSnapshot) -> HealthSnapshot {
        health.with_overrides(self.effects.drained.clone(), self.effects.pins.clone())
    }
}

fn log_entry(events: &EventLog, entry: &Entry, how: &str) {
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
