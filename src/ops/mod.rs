//! Operator views: what `/status` shows ([`status`]), what the event log says
//! changed ([`changes`]) — both pure — and the record runbook ([`runbook`]) and
//! failover drill ([`drill`]) an operator runs. `status` and `changes` take the
//! config, the snapshot or health, the previous state and the time as inputs; the
//! health plane calls them and emits or publishes what they return.

pub(crate) mod changes;
pub(crate) mod drill;
pub(crate) mod runbook;
pub(crate) mod status;
