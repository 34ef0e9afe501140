//! The plane's part in follow-the-primary records: it feeds every decision to the
//! pure [`PrimaryMemory`], raises the events (agreed primary, split brain and its
//! end, with the conflict counter), and hands the last agreed primaries to the
//! answers through the health snapshot.

use std::sync::atomic::Ordering;

use super::{Plane, Role};
use crate::config::{Config, OnConflict};
use crate::health::HealthSnapshot;
use crate::policy::primary::PrimaryChange;

impl Plane {
    /// Feeds a decision to the primary memory (events for what changed) and gives the
    /// health each `primary` record's last agreed primary.
    pub(super) fn with_primaries(
        &mut self,
        config: &Config,
        health: HealthSnapshot,
    ) -> HealthSnapshot {
        let changes = self.primaries.observe(config, &health);
        for change in changes {
            if self.role != Role::Server {
                continue;
            }
            match change {
                PrimaryChange::Agreed { record, from, to } => {
                    let r = &config.records[record.0 as usize];
                    crate::event!(
                        self.events,
                        info,
                        "primary",
                        ("the checks agree on primary {to}"),
                        record = r.name,
                        record_type = r.record_type,
                        from = from.unwrap_or_else(|| "none".to_owned()),
                        to = to,
                    );
                }
                PrimaryChange::ConflictBegan {
                    record,
                    claimants,
                    held,
                } => {
                    self.metrics
                        .primary_conflicts
                        .fetch_add(1, Ordering::Relaxed);
                    let r = &config.records[record.0 as usize];
                    let answered = match (r.on_conflict, &held) {
                        (OnConflict::Hold, Some(held)) => held.clone(),
                        _ => "nothing (NODATA)".to_owned(),
                    };
                    crate::event!(
                        self.events,
                        error,
                        "primary_conflict",
                        (
                            "split brain: {} claim primary; answering {answered}",
                            claimants.join(" and ")
                        ),
                        record = r.name,
                        record_type = r.record_type,
                        claimants = claimants.join(","),
                        held = held.unwrap_or_else(|| "none".to_owned()),
                    );
                }
                PrimaryChange::ConflictEnded { record } => {
                    let r = &config.records[record.0 as usize];
                    crate::event!(
                        self.events,
                        info,
                        "primary_conflict_ended",
                        "at most one endpoint claims primary again",
                        record = r.name,
                        record_type = r.record_type,
                    );
                }
            }
            self.save_pending = true;
        }
        let agreed = self.primaries.indices(config);
        health.with_primaries(agreed)
    }
}
