//! What the process tells about itself: metric names ([`names`]), the answer path's
//! per-thread counters ([`metrics`]), their Prometheus exposition through a
//! `prometheus-client` registry ([`registry`]), and the event log (`events`, with
//! the `event!` macro).

pub mod events;
pub mod metrics;
pub mod names;
pub mod registry;
