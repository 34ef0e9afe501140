//! Probing endpoints from this vantage point: checkers, a scheduler with jitter and the
//! anti-flap state machine per endpoint, and the reporter that pushes signed verdicts
//! to servers. Probes never decide an answer; they produce verdicts.

pub(crate) mod check;
pub(crate) mod exec;
pub(crate) mod fault;
pub(crate) mod postgres;
pub(crate) mod reporter;
pub(crate) mod scheduler;

/// Errors preparing a prober.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum ProbeError {
    /// The TLS settings could not be built (CA file unreadable, ...).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}
