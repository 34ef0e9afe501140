//! Logs that cannot be flooded or forged.
//!
//! - [`Escaped`] shows a value with every control character escaped (newline, CR,
//!   ESC, NUL, the rest of C0 and C1, DEL, the Unicode line and paragraph separators
//!   and the bidirectional controls), so a value from the network can neither end
//!   the log line it is in, nor start a forged one, nor colour or move a terminal's
//!   cursor. The event macro ([`crate::event!`]) applies it to the message and every
//!   field; direct `tracing` calls log network strings as `?field` (Rust's `Debug`
//!   escapes the same characters) or wrap other values in [`Escaped`].
//! - [`LogLimiter`] is a token bucket per log site ([`log_limited!`]): lines logged
//!   on a refusal anyone can provoke without credentials (a refused transfer, a
//!   rejected report, a refused override sync) come at most [`BURST`](limit::BURST) at
//!   once and then one per [`REFILL`](limit::REFILL); the next line logged says how
//!   many were left out ("… (12 more suppressed in the last 40 s)"). Metrics still count every refusal.
//!
//! What `tracing-subscriber` 0.3.23 does by itself: in the text format it passes the
//! `message` field through an ANSI guard that escapes ESC, BEL, BS, FF, DEL and C1,
//! but not newline, CR, NUL, the other C0 characters or U+2028/U+2029, and it writes
//! `%field` values (`Display`) as they are; `?field` values get Rust's `Debug`
//! escaping. The JSON format escapes what JSON must (`"`, `\` and U+0000–U+001F), so
//! a value cannot break a JSON line, but DEL, C1 and U+2028/U+2029 pass through raw.
//! Escaping here, before either format, makes both hold for every field.

pub(crate) mod escape;
mod limit;

pub(crate) use escape::Escaped;
#[cfg(test)]
pub(crate) use escape::needs_escape;
pub(crate) use limit::LogLimiter;

/// Logs through `tracing` at most [`BURST`](limit::BURST) lines at once and one per
/// [`REFILL`](limit::REFILL) from this call site (a [`LogLimiter`] of its own); a line
/// logged after some were left out says how many: `log_limited!(warn, "report rejected", reason = %e)`.
/// Fields use `tracing`'s syntax; the message is a literal.
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $message:literal $(,)?) => {{
        static LIMITER: $crate::logs::LogLimiter = $crate::logs::LogLimiter::new();
        if let Some(suppressed) = LIMITER.admit() {
            tracing::$level!("{}{}", $message, suppressed);
        }
    }};
    ($level:ident, $message:literal, $($field:tt)+) => {{
        static LIMITER: $crate::logs::LogLimiter = $crate::logs::LogLimiter::new();
        if let Some(suppressed) = LIMITER.admit() {
            tracing::$level!($($field)+, "{}{}", $message, suppressed);
        }
    }};
}
