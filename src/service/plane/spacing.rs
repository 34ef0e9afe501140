//! Spacing out the plane's jobs whose cost grows with the config.

use std::time::Duration;

use tokio::time::Instant;

use super::TICK;

/// Spaces out a job whose cost grows with the config (status, the state file): it
/// runs at once while cheap (under 1 ms), otherwise no sooner than `factor` times its
/// last cost after its last run (at most `longest`), so it never takes more than
/// 1/`factor` of a core.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spacing {
    factor: u32,
    longest: Duration,
    last: Instant,
    cost: Duration,
}

impl Spacing {
    pub(super) fn new(factor: u32, longest: Duration) -> Self {
        Self {
            factor,
            longest,
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }

    pub(super) fn due(&self) -> bool {
        let spacing = (self.cost * self.factor).clamp(TICK, self.longest);
        self.cost < Duration::from_millis(1) || self.last.elapsed() >= spacing
    }

    pub(super) fn ran(&mut self, started: Instant) {
        self.cost = started.elapsed();
        self.last = Instant::now();
    }
}

#[cfg(test)]
mod tests;
