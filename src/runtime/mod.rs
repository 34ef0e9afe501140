//! What the process needs from its host at run time: descriptor limits, and the
//! pacing of retries after a resource ran out.

pub(crate) mod clock;
pub(crate) mod http;
pub(crate) mod inherit;
pub(crate) mod random;

use std::time::Duration;

/// The soft limit on open descriptors (None: unlimited or unknown).
pub(crate) fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime and most servers
/// do), so connections, probes and files do not run out at the historic 1024.
/// Returns the soft limit in force afterwards.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Doubling delays after a failure, from 10 ms up to one second.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Forgets earlier failures.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Whether this is the first failure since the last reset (log it then only).
    pub(crate) fn first(&self) -> bool {
        self.failures == 0
    }

    /// Counts a failure and returns how long to wait before trying again.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = Duration::from_millis(10) * 2u32.saturating_pow(self.failures.min(7));
        self.failures = self.failures.saturating_add(1);
        delay.min(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        assert!(backoff.first());
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert!(!backoff.first());
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(10));
    }
}
