//! What the process tells about itself: the event log (`events`, with the `event!`
//! macro). Metric names and counters still live in `crate::metrics`.

pub mod events;
