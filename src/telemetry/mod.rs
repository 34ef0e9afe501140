//! What the process tells about itself: metric names ([`names`]), the answer path's
//! per-thread counters ([`metrics`]), their Prometheus exposition through a
//! `prometheus-client` registry ([`registry`]), and the event log (`events`, with
//! the `event!` macro).

pub(crate) mod events;
pub(crate) mod metrics;
pub(crate) mod names;
pub(crate) mod registry;
