//! Probing endpoints from this vantage point: checkers, a scheduler with jitter and the
//! anti-flap state machine per endpoint, and the reporter that pushes signed verdicts
//! to servers. Probes never decide an answer; they produce verdicts.

pub mod check;
pub mod exec;
pub mod fault;
pub mod postgres;
pub mod reporter;
pub mod scheduler;
pub mod tls;

pub use self::check::{ProbeOutcome, Prober};
