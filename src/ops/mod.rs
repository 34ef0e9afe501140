//! Pure operator views of a running server: what `/status` shows ([`status`]) and
//! what the event log says changed ([`changes`]). Each takes the config, the
//! snapshot or health, the previous state and the time as inputs; the health plane
//! calls them and emits or publishes what they return.

pub mod changes;
pub mod status;
