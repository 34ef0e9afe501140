//! Randomness from the operating system (`getrandom`), for what must not be guessed
//! from outside: DNS message ids of health checks and NOTIFYs, hash and jitter seeds.
//! One place, so no module invents its own source.

/// 64 random bits. Should the OS source fail (it does not on Linux after boot), the
/// process's hasher keys, themselves OS-seeded, are used instead.
pub(crate) fn u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::thread::current().id())
    })
}

/// 16 random bits: a DNS message id.
pub(crate) fn u16() -> u16 {
    (u64() >> 24) as u16
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_vary() {
        let ids: std::collections::BTreeSet<u16> = (0..64).map(|_| super::u16()).collect();
        assert!(ids.len() > 32, "{ids:?}");
    }
}
