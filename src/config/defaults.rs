//! Every default of the configuration, in one place. `config/example.toml` documents each
//! of them; the test below reads that file and checks that it says the same.

use std::time::Duration;

/// Default of `[health] override_warn_after`.
pub const DEFAULT_OVERRIDE_WARN_AFTER: Duration = Duration::from_secs(4 * 3600);

/// Default of `[dnstap] queue`.
pub const DNSTAP_QUEUE: usize = 16_384;

/// `[checks.NAME]` defaults.
pub mod checks {
    use std::time::Duration;

    /// Time between probes.
    pub const INTERVAL: Duration = Duration::from_secs(1);
    /// Consecutive successes to go up.
    pub const RISE: i64 = 2;
    /// Consecutive failures to go down.
    pub const FALL: i64 = 2;
    /// Minimum time down before coming back up.
    pub const HOLD: Duration = Duration::ZERO;
    /// Slow start ramp (zero: off).
    pub const SLOW_START: Duration = Duration::ZERO;
    /// Seconds between Route 53 checks.
    pub const ROUTE53_REQUEST_INTERVAL: u8 = 30;
}

/// Defaults of `postgres` checks.
pub mod postgres {
    /// Port.
    pub const PORT: u16 = 5432;
    /// User.
    pub const USER: &str = "postgres";
    /// Database.
    pub const DATABASE: &str = "postgres";
}

/// Defaults of `[dnssec]`.
pub mod dnssec {
    use std::time::Duration;

    /// Key directory, relative to the config file.
    pub const KEY_DIRECTORY: &str = "keys";
    /// Signature lifetime.
    pub const SIGNATURE_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
    /// Re-signing period.
    pub const REFRESH: Duration = Duration::from_secs(7 * 86_400);
    /// Inception backdating.
    pub const INCEPTION_OFFSET: Duration = Duration::from_secs(3600);
    /// TTL of DNSKEY, CDS and CDNSKEY.
    pub const DNSKEY_TTL: u32 = 3600;
}

/// Defaults of `[transfer]`.
pub mod transfer {
    use std::time::Duration;

    /// Versions kept per zone for IXFR.
    pub const JOURNAL_VERSIONS: usize = 64;
    /// NOTIFY attempts per address and change.
    pub const NOTIFY_ATTEMPTS: u32 = 5;
    /// First NOTIFY response wait (doubles per retry).
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);
    /// Suffix of the serial file next to the health state file.
    pub const STATE_SUFFIX: &str = ".serials.json";
    /// How far a TSIG-signed message's time may be from ours (RFC 8945 §10
    /// recommends 300 s), whatever Fudge it carries.
    pub const TSIG_WINDOW: Duration = Duration::from_secs(300);
    /// Longest `tsig_window` accepted: Fudge is 16 bits of seconds.
    pub const MAX_TSIG_WINDOW: Duration = Duration::from_secs(65_535);
}

/// Default of `[pools.NAME] max_load`: a pool may be driven to its whole capacity.
pub const MAX_LOAD: f64 = 1.0;

/// Latency steering defaults: `[health] rtt_window` and the records' `min_gain`,
/// `min_gain_percent` and `hold`.
pub mod latency {
    use std::time::Duration;

    /// Time constant of the RTT EWMA.
    pub const RTT_WINDOW: Duration = Duration::from_secs(10);
    /// Least gain in RTT worth a move.
    pub const MIN_GAIN: Duration = Duration::from_millis(10);
    /// Least gain in percent of the current pool's RTT worth a move.
    pub const MIN_GAIN_PERCENT: f64 = 10.0;
    /// How long a better pool must stay better; least time between moves.
    pub const HOLD: Duration = Duration::from_secs(60);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{ServerConfig, parse_duration};

    const EXAMPLE: &str = include_str!("../../config/example.toml");

    /// The default `config/example.toml` documents for `key` in the table headed
    /// `section` (`[section]` or `# [section]`): the word after "default " in the comment
    /// block above the key's first line (`key = ...` or `# key = ...`).
    fn documented(section: &str, key: &str) -> String {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let header = format!("[{section}]");
        let start = lines
            .iter()
            .position(|l| l.trim_start_matches("# ") == header)
            .unwrap_or_else(|| panic!("no {header} in config/example.toml"));
        let at = (start + 1..lines.len())
            .find(|&i| {
                lines[i]
                    .trim_start_matches("# ")
                    .starts_with(&format!("{key} = "))
            })
            .unwrap_or_else(|| panic!("no {key} under {header} in config/example.toml"));
        let mut first = at;
        while first > 0 && lines[first - 1].starts_with('#') && !lines[first - 1].contains(" = ") {
            first -= 1;
        }
        let block = lines[first..at].join(" ");
        let after = block
            .split_once("default ")
            .unwrap_or_else(|| panic!("{section}.{key}: no default documented: {block}"))
            .1;
        let word = after.split_whitespace().next().unwrap_or_default();
        word.trim_end_matches(['.', ',', ';'])
            .trim_matches('"')
            .to_owned()
    }

    fn duration(section: &str, key: &str) -> Duration {
        let text = documented(section, key);
        parse_duration(&text).unwrap_or_else(|e| panic!("{section}.{key}: {e}"))
    }

    fn number(section: &str, key: &str) -> i64 {
        let text = documented(section, key);
        text.parse()
            .unwrap_or_else(|e| panic!("{section}.{key}: {text:?}: {e}"))
    }

    #[test]
    fn every_default_is_the_one_example_toml_documents() {
        let c = "checks.web-https";
        assert_eq!(duration(c, "interval"), checks::INTERVAL);
        assert_eq!(number(c, "rise"), checks::RISE);
        assert_eq!(number(c, "fall"), checks::FALL);
        assert_eq!(duration(c, "hold"), checks::HOLD);
        assert_eq!(duration(c, "slow_start"), checks::SLOW_START);
        let pg = "checks.pg-primary";
        assert_eq!(documented(pg, "user"), postgres::USER);
        assert_eq!(documented(pg, "database"), postgres::DATABASE);
        assert_eq!(
            duration("health", "override_warn_after"),
            DEFAULT_OVERRIDE_WARN_AFTER
        );
        assert_eq!(duration("health", "rtt_window"), latency::RTT_WINDOW);
        assert_eq!(number("dnstap", "queue"), DNSTAP_QUEUE as i64);
        assert_eq!(
            number("transfer", "journal_versions"),
            transfer::JOURNAL_VERSIONS as i64
        );
        assert_eq!(
            number("transfer", "notify_attempts"),
            i64::from(transfer::NOTIFY_ATTEMPTS)
        );
        assert_eq!(
            duration("transfer", "notify_timeout"),
            transfer::NOTIFY_TIMEOUT
        );
        assert_eq!(duration("transfer", "tsig_window"), transfer::TSIG_WINDOW);
        assert_eq!(documented("dnssec", "key_directory"), dnssec::KEY_DIRECTORY);
        assert_eq!(
            duration("dnssec", "signature_validity"),
            dnssec::SIGNATURE_VALIDITY
        );
        assert_eq!(duration("dnssec", "refresh"), dnssec::REFRESH);
        assert_eq!(
            duration("dnssec", "inception_offset"),
            dnssec::INCEPTION_OFFSET
        );
        assert_eq!(
            duration("dnssec", "dnskey_ttl"),
            Duration::from_secs(u64::from(dnssec::DNSKEY_TTL))
        );
        let s = "server";
        assert_eq!(
            duration(s, "tcp_idle_timeout"),
            ServerConfig::DEFAULT_TCP_IDLE_TIMEOUT
        );
        assert_eq!(
            number(s, "tcp_max_connections"),
            ServerConfig::DEFAULT_TCP_MAX_CONNECTIONS as i64
        );
        assert_eq!(
            number(s, "tcp_max_connections_per_source"),
            ServerConfig::DEFAULT_TCP_MAX_CONNECTIONS_PER_SOURCE as i64
        );
    }
}
