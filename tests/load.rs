//! Tests that load the machine — connection floods, a query stream across 20
//! restarts, 100 kill-and-restart rounds — in a binary of their own and one at a
//! time, so that they never share this machine's two cores with each other or with
//! the rest of the suite (cargo runs test binaries one after another).

#![allow(unreachable_pub, missing_docs)]

mod support;

mod load {
    pub mod durability;
    pub mod flood;
    pub mod replace;
}

/// Holds the machine for one load test at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}
