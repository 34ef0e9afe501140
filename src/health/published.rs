//! The health the answers see, composed in ONE place.
//!
//! A decision of the [`Board`](super::board::Board) (or, in another process, the
//! decided states a server reports by endpoint label) becomes the health DNS answers
//! are built from in one step: the operator's drains and manual failovers
//! ([`Effects`]), then each `primary` record's last agreed primary, elected over the
//! health *with* those overrides (a drained endpoint claims nothing). The health
//! plane publishes this, `ctl explain --config` (what-if) answers from it, and the
//! Route 53 mirror syncs it, so the three cannot drift apart.
//!
//! ```text
//!  decided (board, or by label) ─▶ + drains, failovers ─▶ + agreed primaries ─▶ published
//! ```
//!
//! Pure: no clock, no I/O. The primary election lives above this layer
//! (`policy::primary`), so the caller passes it in as `agreed`.

use super::overrides::Effects;
use super::{EndpointHealth, HealthSnapshot, HealthSource};
use crate::config::Config;
use crate::model::{EndpointIndex, HealthState};

/// Composes the published health: `decided` with the operator's drains and manual
/// failovers from `effects`, then with the primaries `agreed` returns for that
/// health (per record; `None`: none known). `effects.forced` is not applied here:
/// forced states are part of the decision (the board, or [`decided_by_label`]).
pub(crate) fn compose(
    decided: HealthSnapshot,
    effects: &Effects,
    agreed: impl FnOnce(&HealthSnapshot) -> Vec<Option<EndpointIndex>>,
) -> HealthSnapshot {
    let health = decided
        .with_overrides(effects.drained.clone(), effects.pins.clone())
        .with_dials(effects.dials.clone());
    let primaries = agreed(&health);
    health.with_primaries(primaries)
}

/// The decided health of `config`'s endpoints from what another process reports by
/// endpoint label: a state in `forced` (per endpoint) wins, as `Forced`; then what
/// `known` says for the label; else the config's default (its `force`, else assumed
/// up).
pub(crate) fn decided_by_label(
    config: &Config,
    forced: &[Option<HealthState>],
    known: impl Fn(&str) -> Option<EndpointHealth>,
) -> HealthSnapshot {
    let defaults = HealthSnapshot::from_config(config);
    let endpoints = (0..config.endpoints.len())
        .map(|i| {
            let index = EndpointIndex(i as u32);
            if let Some(state) = forced.get(i).copied().flatten() {
                return EndpointHealth {
                    state,
                    source: HealthSource::Forced,
                };
            }
            known(&config.endpoint_label(index))
                .or_else(|| defaults.get(index).copied())
                .unwrap_or(EndpointHealth {
                    state: HealthState::Up,
                    source: HealthSource::Assumed,
                })
        })
        .collect();
    HealthSnapshot::from_health(endpoints)
}

#[cfg(test)]
mod tests;
