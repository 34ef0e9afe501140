//! The plane's part in follow-the-primary records: it feeds every decision to the
//! pure [`PrimaryMemory`], raises the events (agreed primary, split brain and its
//! end, with the conflict counter), and hands the last agreed primaries to the
//! answers through the health snapshot.

use std::sync::atomic::Ordering;

use super::{Plane, Role};
use crate::config::{Config, OnConflict};
use crate::health::{HealthSnapshot, published};
use crate::policy::primary::PrimaryChange;

impl Plane {
    /// The health the answers see for a decision ([`published::compose`]): the
    /// operator's overrides, then the primary memory fed (events for what changed)
    /// and each `primary` record's last agreed primary.
    pub(super) fn published(&mut self, config: &Config, decided: HealthSnapshot) -> HealthSnapshot {
        let primaries = &mut self.primaries;
        let mut changes = Vec::new();
        let health = published::compose(decided, &self.effects, |health| {
            changes = primaries.observe(config, health);
            primaries.indices(config)
        });
        self.narrate_primaries(config, changes);
        self.steer(config, health)
    }

    /// Raises the events of what the primary memory saw change.
    fn narrate_primaries(&mut self, config: &Config, changes: Vec<PrimaryChange>) {
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
    }
}
