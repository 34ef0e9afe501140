//! The wall clock, in the units the rest of the crate keeps (one place, so a test or a
//! later change of source touches one function).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now (0 before 1970, which a sane clock never is).
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Unix seconds now.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn unix_now() -> u64 {
    unix_ms() / 1000
}
