//! Every default of the configuration, in one place: one constant per key, named after
//! it, in a module per section; the validators and the `Default` impls read them from
//! here. [`TABLE`] lists every key that has a default with the default as
//! `config/example.toml` writes it, and the test in `defaults/tests.rs` reads that
//! file and fails, naming the key, wherever the two disagree, where a default is not
//! documented there, and where the file documents a default this table does not hold.
//!
//! A default that is an empty list or table is the field's serde default, not a
//! constant; a default computed from other keys (a check's `timeout` from its
//! `interval`) has the constants of its rule here and is [`Value::Derived`] in the
//! table.

use std::time::Duration;

/// `[server]` defaults.
pub mod server {
    use std::time::Duration;

    /// `server.listen`.
    pub const LISTEN: &[&str] = &["127.0.0.1:5353"];
    /// `server.udp_workers` (0: one per available core, at most 16).
    pub const UDP_WORKERS: i64 = 0;
    /// `server.udp_io`.
    pub const UDP_IO: &str = "batched";
    /// `server.max_udp_payload`.
    pub const MAX_UDP_PAYLOAD: i64 = 1232;
    /// `server.tcp_idle_timeout`.
    pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `server.tcp_max_connections`.
    pub const TCP_MAX_CONNECTIONS: usize = 1024;
    /// `server.tcp_max_connections_per_source` (or `tcp_max_connections` if smaller).
    pub const TCP_MAX_CONNECTIONS_PER_SOURCE: usize = 32;
}

/// `[server.rrl]` defaults (what an empty `[server.rrl]` table means).
pub mod rrl {
    /// `server.rrl.rate`.
    pub const RATE: u32 = 20;
    /// `server.rrl.slip`.
    pub const SLIP: u32 = 2;
    /// `server.rrl.ipv4_prefix`.
    pub const IPV4_PREFIX: u8 = 24;
    /// `server.rrl.ipv6_prefix`.
    pub const IPV6_PREFIX: u8 = 56;
    /// `server.rrl.table_size`.
    pub const TABLE_SIZE: usize = 65_536;
}

/// `[zones]` defaults.
pub mod zones {
    /// `zones.directory`, relative to the config file.
    pub const DIRECTORY: &str = "../zones";
}

/// `[geo]` defaults.
pub mod geo {
    /// `geo.ecs`.
    pub const ECS: bool = true;
}

/// `[checks.NAME]` defaults.
pub mod checks {
    use std::time::Duration;

    /// `checks.NAME.port` of `type = "http"`.
    pub const HTTP_PORT: u16 = 80;
    /// `checks.NAME.port` of `type = "https"`.
    pub const HTTPS_PORT: u16 = 443;
    /// `checks.NAME.port` of `type = "dns"`.
    pub const DNS_PORT: u16 = 53;
    /// `checks.NAME.method`.
    pub const METHOD: &str = "GET";
    /// `checks.NAME.path`.
    pub const PATH: &str = "/";
    /// `checks.NAME.expect_status`.
    pub const EXPECT_STATUS: &[&str] = &["200-399"];
    /// `checks.NAME.tls_verify`.
    pub const TLS_VERIFY: bool = true;
    /// `checks.NAME.query_type`.
    pub const QUERY_TYPE: &str = "A";
    /// `checks.NAME.expect_rcode`.
    pub const EXPECT_RCODE: &str = "NOERROR";
    /// `checks.NAME.interval`.
    pub const INTERVAL: Duration = Duration::from_secs(1);
    /// `checks.NAME.timeout`: this share of `interval`.
    pub const TIMEOUT_SHARE: f64 = 0.8;
    /// `checks.NAME.fast_interval`: `interval` divided by this…
    pub const FAST_INTERVAL_DIVISOR: u32 = 5;
    /// …and at least this (`checks.NAME.fast_interval`).
    pub const FAST_INTERVAL_MIN: Duration = Duration::from_millis(50);
    /// `checks.NAME.jitter`: `interval` divided by this.
    pub const JITTER_DIVISOR: u32 = 10;
    /// `checks.NAME.rise`.
    pub const RISE: i64 = 2;
    /// `checks.NAME.fall`.
    pub const FALL: i64 = 2;
    /// `checks.NAME.hold`.
    pub const HOLD: Duration = Duration::ZERO;
    /// `checks.NAME.slow_start` (zero: off).
    pub const SLOW_START: Duration = Duration::ZERO;
    /// `checks.NAME.route53.request_interval` (seconds between Route 53 checks).
    pub const ROUTE53_REQUEST_INTERVAL: u8 = 30;
}

/// `[checks.NAME] damping` defaults (BGP-style flap damping, on by default).
pub mod damping {
    use std::time::Duration;

    /// `checks.NAME.damping.enabled`.
    pub const ENABLED: bool = true;
    /// `checks.NAME.damping.penalty`.
    pub const PENALTY: f64 = 1000.0;
    /// `checks.NAME.damping.half_life`.
    pub const HALF_LIFE: Duration = Duration::from_secs(5);
    /// `checks.NAME.damping.suppress`.
    pub const SUPPRESS: f64 = 1500.0;
    /// `checks.NAME.damping.reuse`.
    pub const REUSE: f64 = 750.0;
    /// `checks.NAME.damping.max_suppress`.
    pub const MAX_SUPPRESS: Duration = Duration::from_secs(30);
}

/// Defaults of `postgres` checks.
pub mod postgres {
    /// `checks.NAME.port` of `type = "postgres"`.
    pub const PORT: u16 = 5432;
    /// `checks.NAME.user`.
    pub const USER: &str = "postgres";
    /// `checks.NAME.database`.
    pub const DATABASE: &str = "postgres";
    /// `checks.NAME.role`.
    pub const ROLE: &str = "any";
    /// `checks.NAME.sslmode`.
    pub const SSLMODE: &str = "disable";
}

/// `[pools.NAME]` defaults.
pub mod pools {
    /// `pools.NAME.min_healthy`.
    pub const MIN_HEALTHY: i64 = 1;
    /// `pools.NAME.endpoints[N].weight`.
    pub const WEIGHT: u32 = 1;
    /// `pools.NAME.max_load`: a pool may be driven to its whole capacity.
    pub const MAX_LOAD: f64 = 1.0;
}

/// `[[records]]` defaults.
pub mod records {
    /// `records[N].ttl` (seconds).
    pub const TTL: u32 = 30;
    /// `records[N].all_down_ttl`: the record's `ttl`, at most this (seconds).
    pub const ALL_DOWN_TTL_CAP: u32 = 10;
    /// `records[N].min_ttl` (seconds).
    pub const MIN_TTL: u32 = 1;
    /// `records[N].max_answers` of `weighted` and `primary` records.
    pub const MAX_ANSWERS_ONE: i64 = 1;
    /// `records[N].max_answers` of `failover` and `multivalue` records.
    pub const MAX_ANSWERS: i64 = 8;
    /// `records[N].all_down`.
    pub const ALL_DOWN: &str = "fail-open";
    /// `records[N].on_conflict`.
    pub const ON_CONFLICT: &str = "hold";
    /// `records[N].select`.
    pub const SELECT: &str = "failover";
    /// `records[N].spill`.
    pub const SPILL: bool = false;
}

/// `[[safety]]` defaults.
pub mod safety {
    /// `safety[N].min_in_service`.
    pub const MIN_IN_SERVICE: i64 = 1;
}

/// `[health]` defaults.
pub mod health {
    use std::time::Duration;

    /// `health.isolation`.
    pub const ISOLATION: &str = "hold";
    /// `health.down_regions`.
    pub const DOWN_REGIONS: i64 = 1;
    /// `health.staleness`.
    pub const STALENESS: Duration = Duration::from_secs(10);
    /// `health.push_interval`.
    pub const PUSH_INTERVAL: Duration = Duration::from_millis(500);
    /// `health.override_warn_after`.
    pub const OVERRIDE_WARN_AFTER: Duration = Duration::from_secs(4 * 3600);
    /// `health.cold_start` (and so of `records[N].cold_start`).
    pub const COLD_START: &str = "last-known";
}

/// `[admin]` defaults.
pub mod admin {
    use std::time::Duration;

    /// `admin.max_connections`.
    pub const MAX_CONNECTIONS: usize = 256;
    /// `admin.max_connections_per_source` (or `max_connections` if smaller).
    pub const MAX_CONNECTIONS_PER_SOURCE: usize = 32;
    /// `admin.header_timeout`.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
    /// `admin.body_timeout`.
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
    /// `admin.idle_timeout`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `admin.handshake_timeout`.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
    /// `admin.public`.
    pub const PUBLIC: &[&str] = &["healthz", "readyz"];
}

/// `[route53]` defaults.
pub mod route53 {
    use std::time::Duration;

    /// `route53.region` (of the API client; Route 53 is global).
    pub const REGION: &str = "us-east-1";
    /// `route53.owner_id`.
    pub const OWNER_ID: &str = "failoverd";
    /// `route53.mode`.
    pub const MODE: &str = "native";
    /// `route53.max_requests_per_second`.
    pub const MAX_REQUESTS_PER_SECOND: f64 = 5.0;
    /// `route53.burst`.
    pub const BURST: i64 = 10;
    /// `route53.debounce`.
    pub const DEBOUNCE: Duration = Duration::from_secs(2);
    /// `route53.change_timeout`.
    pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);
    /// `route53.sync_interval`.
    pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);
    /// `route53.max_update_percent`.
    pub const MAX_UPDATE_PERCENT: i64 = 30;
    /// `route53.max_delete_percent`.
    pub const MAX_DELETE_PERCENT: i64 = 30;
    /// `route53.zones[N].sync_static`.
    pub const SYNC_STATIC: bool = false;
}

/// `[dnstap]` defaults.
pub mod dnstap {
    /// `dnstap.log_queries`.
    pub const LOG_QUERIES: bool = true;
    /// `dnstap.log_responses`.
    pub const LOG_RESPONSES: bool = true;
    /// `dnstap.queue`.
    pub const QUEUE: usize = 16_384;
}

/// `[dnssec]` defaults.
pub mod dnssec {
    use std::time::Duration;

    /// `dnssec.key_directory`, relative to the config file.
    pub const KEY_DIRECTORY: &str = "keys";
    /// `dnssec.nsec`.
    pub const NSEC: &str = "nsec3";
    /// `dnssec.opt_out`.
    pub const OPT_OUT: bool = false;
    /// `dnssec.signature_validity`.
    pub const SIGNATURE_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
    /// `dnssec.refresh`.
    pub const REFRESH: Duration = Duration::from_secs(7 * 86_400);
    /// `dnssec.inception_offset`.
    pub const INCEPTION_OFFSET: Duration = Duration::from_secs(3600);
    /// `dnssec.dnskey_ttl` (TTL of DNSKEY, CDS and CDNSKEY, seconds).
    pub const DNSKEY_TTL: u32 = 3600;
}

/// `[transfer]` defaults.
pub mod transfer {
    use std::time::Duration;

    /// `transfer.journal_versions` (versions kept per zone for IXFR).
    pub const JOURNAL_VERSIONS: usize = 64;
    /// `transfer.notify_attempts` (per address and change).
    pub const NOTIFY_ATTEMPTS: u32 = 5;
    /// `transfer.notify_timeout` (first NOTIFY response wait; doubles per retry).
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);
    /// `transfer.state_file`: this suffix on `[health] state_file`.
    pub const STATE_SUFFIX: &str = ".serials.json";
    /// `transfer.tsig_window`: how far a TSIG-signed message's time may be from ours
    /// (RFC 8945 §10 recommends 300 s), whatever Fudge it carries.
    pub const TSIG_WINDOW: Duration = Duration::from_secs(300);
    /// Longest `transfer.tsig_window` accepted: Fudge is 16 bits of seconds.
    pub const MAX_TSIG_WINDOW: Duration = Duration::from_secs(65_535);
    /// `transfer.keys[N].algorithm`.
    pub const ALGORITHM: &str = "hmac-sha256";
}

/// Latency steering defaults: `[health] rtt_window` and the records' `min_gain`,
/// `min_gain_percent` and `hold`.
pub mod latency {
    use std::time::Duration;

    /// `health.rtt_window`: time constant of the RTT EWMA.
    pub const RTT_WINDOW: Duration = Duration::from_secs(10);
    /// `records[N].min_gain`: least gain in RTT worth a move.
    pub const MIN_GAIN: Duration = Duration::from_millis(10);
    /// `records[N].min_gain_percent`: least gain in percent of the current pool's RTT.
    pub const MIN_GAIN_PERCENT: f64 = 10.0;
    /// `records[N].hold`: how long a better pool must stay better; least time between moves.
    pub const HOLD: Duration = Duration::from_secs(60);
}

/// A default as `config/example.toml` writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'static str),
    /// A duration (written as a string in the duration grammar).
    Duration(Duration),
    /// A list of strings (`[]`: empty).
    List(&'static [&'static str]),
    /// An empty table (`{}`).
    EmptyTable,
    /// One integer per case, written `default 80 (http), 443 (https)`.
    PerCase(&'static [(i64, &'static str)]),
    /// Computed from other keys or the environment: written `default: <rule>`.
    Derived,
}

const fn secs(d: Duration) -> Value {
    Value::Duration(d)
}

/// Every key that has a default, by key path (`NAME` and `N` stand for any table name
/// or array index), with its default.
pub const TABLE: &[(&str, Value)] = {
    use Value::{Bool, Derived, EmptyTable, Float, Int, List, PerCase, Str};
    &[
        ("server.listen", List(server::LISTEN)),
        ("server.udp_workers", Int(server::UDP_WORKERS)),
        ("server.udp_io", Str(server::UDP_IO)),
        ("server.max_udp_payload", Int(server::MAX_UDP_PAYLOAD)),
        ("server.tcp_idle_timeout", secs(server::TCP_IDLE_TIMEOUT)),
        (
            "server.tcp_max_connections",
            Int(server::TCP_MAX_CONNECTIONS as i64),
        ),
        (
            "server.tcp_max_connections_per_source",
            Int(server::TCP_MAX_CONNECTIONS_PER_SOURCE as i64),
        ),
        ("server.rrl.rate", Int(rrl::RATE as i64)),
        ("server.rrl.slip", Int(rrl::SLIP as i64)),
        ("server.rrl.ipv4_prefix", Int(rrl::IPV4_PREFIX as i64)),
        ("server.rrl.ipv6_prefix", Int(rrl::IPV6_PREFIX as i64)),
        ("server.rrl.whitelist", List(&[])),
        ("server.rrl.table_size", Int(rrl::TABLE_SIZE as i64)),
        ("zones.directory", Str(zones::DIRECTORY)),
        ("zones.files", Derived),
        ("regions.NAME.networks", List(&[])),
        ("geo.ecs", Bool(geo::ECS)),
        (
            "checks.NAME.port",
            PerCase(&[
                (checks::HTTP_PORT as i64, "http"),
                (checks::HTTPS_PORT as i64, "https"),
                (checks::DNS_PORT as i64, "dns"),
                (postgres::PORT as i64, "postgres"),
            ]),
        ),
        ("checks.NAME.method", Str(checks::METHOD)),
        ("checks.NAME.path", Str(checks::PATH)),
        ("checks.NAME.host", Derived),
        ("checks.NAME.headers", EmptyTable),
        ("checks.NAME.expect_status", List(checks::EXPECT_STATUS)),
        ("checks.NAME.tls_verify", Bool(checks::TLS_VERIFY)),
        ("checks.NAME.interval", secs(checks::INTERVAL)),
        ("checks.NAME.timeout", Derived),
        ("checks.NAME.fast_interval", Derived),
        ("checks.NAME.down_interval", Derived),
        ("checks.NAME.jitter", Derived),
        ("checks.NAME.rise", Int(checks::RISE)),
        ("checks.NAME.fall", Int(checks::FALL)),
        ("checks.NAME.hold", secs(checks::HOLD)),
        (
            "checks.NAME.route53.request_interval",
            Int(checks::ROUTE53_REQUEST_INTERVAL as i64),
        ),
        ("checks.NAME.route53.failure_threshold", Derived),
        ("checks.NAME.route53.regions", Derived),
        ("checks.NAME.damping.enabled", Bool(damping::ENABLED)),
        ("checks.NAME.damping.penalty", Float(damping::PENALTY)),
        ("checks.NAME.damping.half_life", secs(damping::HALF_LIFE)),
        ("checks.NAME.damping.suppress", Float(damping::SUPPRESS)),
        ("checks.NAME.damping.reuse", Float(damping::REUSE)),
        (
            "checks.NAME.damping.max_suppress",
            secs(damping::MAX_SUPPRESS),
        ),
        ("checks.NAME.slow_start", secs(checks::SLOW_START)),
        ("checks.NAME.degraded_window", Int(degraded::WINDOW as i64)),
        ("checks.NAME.degraded_weight", Float(degraded::WEIGHT)),
        ("checks.NAME.query_type", Str(checks::QUERY_TYPE)),
        ("checks.NAME.expect_rcode", Str(checks::EXPECT_RCODE)),
        ("checks.NAME.expect_answer", Derived),
        ("checks.NAME.env", List(&[])),
        ("checks.NAME.user", Str(postgres::USER)),
        ("checks.NAME.database", Str(postgres::DATABASE)),
        ("checks.NAME.role", Str(postgres::ROLE)),
        ("checks.NAME.sslmode", Str(postgres::SSLMODE)),
        ("pools.NAME.min_healthy", Int(pools::MIN_HEALTHY)),
        ("pools.NAME.endpoints[N].name", Derived),
        ("pools.NAME.endpoints[N].weight", Int(pools::WEIGHT as i64)),
        ("pools.NAME.max_load", Float(pools::MAX_LOAD)),
        ("records[N].ttl", Int(records::TTL as i64)),
        (
            "records[N].max_answers",
            PerCase(&[
                (records::MAX_ANSWERS_ONE, "weighted, primary"),
                (records::MAX_ANSWERS, "failover, multivalue"),
            ]),
        ),
        ("records[N].all_down", Str(records::ALL_DOWN)),
        ("records[N].all_down_ttl", Derived),
        ("records[N].min_ttl", Int(records::MIN_TTL as i64)),
        ("records[N].cold_start", Derived),
        ("records[N].route53", Derived),
        ("records[N].gates", EmptyTable),
        ("records[N].on_conflict", Str(records::ON_CONFLICT)),
        ("records[N].select", Str(records::SELECT)),
        ("records[N].spill", Bool(records::SPILL)),
        ("records[N].demand", Derived),
        ("records[N].min_gain", secs(latency::MIN_GAIN)),
        (
            "records[N].min_gain_percent",
            Float(latency::MIN_GAIN_PERCENT),
        ),
        ("records[N].hold", secs(latency::HOLD)),
        ("health.rtt_window", secs(latency::RTT_WINDOW)),
        ("safety[N].name", Derived),
        ("safety[N].min_in_service", Int(safety::MIN_IN_SERVICE)),
        ("health.servers", List(&[])),
        ("health.down_votes", Derived),
        ("health.isolation", Str(health::ISOLATION)),
        ("health.down_regions", Int(health::DOWN_REGIONS)),
        ("health.staleness", secs(health::STALENESS)),
        ("health.push_interval", secs(health::PUSH_INTERVAL)),
        (
            "health.override_warn_after",
            secs(health::OVERRIDE_WARN_AFTER),
        ),
        ("health.cold_start", Str(health::COLD_START)),
        ("admin.max_connections", Int(admin::MAX_CONNECTIONS as i64)),
        (
            "admin.max_connections_per_source",
            Int(admin::MAX_CONNECTIONS_PER_SOURCE as i64),
        ),
        ("admin.header_timeout", secs(admin::HEADER_TIMEOUT)),
        ("admin.body_timeout", secs(admin::BODY_TIMEOUT)),
        ("admin.idle_timeout", secs(admin::IDLE_TIMEOUT)),
        ("admin.handshake_timeout", secs(admin::HANDSHAKE_TIMEOUT)),
        ("admin.names", List(&[])),
        ("admin.public", List(admin::PUBLIC)),
        ("route53.region", Str(route53::REGION)),
        ("route53.owner_id", Str(route53::OWNER_ID)),
        ("route53.mode", Str(route53::MODE)),
        (
            "route53.max_requests_per_second",
            Float(route53::MAX_REQUESTS_PER_SECOND),
        ),
        ("route53.burst", Int(route53::BURST)),
        ("route53.debounce", secs(route53::DEBOUNCE)),
        ("route53.change_timeout", secs(route53::CHANGE_TIMEOUT)),
        ("route53.sync_interval", secs(route53::SYNC_INTERVAL)),
        (
            "route53.max_update_percent",
            Int(route53::MAX_UPDATE_PERCENT),
        ),
        (
            "route53.max_delete_percent",
            Int(route53::MAX_DELETE_PERCENT),
        ),
        ("route53.zones[N].hosted_zone_id", Derived),
        ("route53.zones[N].sync_static", Bool(route53::SYNC_STATIC)),
        ("dnstap.identity", Derived),
        ("dnstap.version", Derived),
        ("dnstap.log_queries", Bool(dnstap::LOG_QUERIES)),
        ("dnstap.log_responses", Bool(dnstap::LOG_RESPONSES)),
        ("dnstap.queue", Int(dnstap::QUEUE as i64)),
        (
            "transfer.journal_versions",
            Int(transfer::JOURNAL_VERSIONS as i64),
        ),
        ("transfer.state_file", Derived),
        (
            "transfer.notify_attempts",
            Int(transfer::NOTIFY_ATTEMPTS as i64),
        ),
        ("transfer.notify_timeout", secs(transfer::NOTIFY_TIMEOUT)),
        ("transfer.tsig_window", secs(transfer::TSIG_WINDOW)),
        ("transfer.keys[N].algorithm", Str(transfer::ALGORITHM)),
        ("transfer.secondaries[N].zones", Derived),
        ("transfer.secondaries[N].allow", Derived),
        ("dnssec.key_directory", Str(dnssec::KEY_DIRECTORY)),
        ("dnssec.nsec", Str(dnssec::NSEC)),
        ("dnssec.opt_out", Bool(dnssec::OPT_OUT)),
        (
            "dnssec.signature_validity",
            secs(dnssec::SIGNATURE_VALIDITY),
        ),
        ("dnssec.refresh", secs(dnssec::REFRESH)),
        ("dnssec.inception_offset", secs(dnssec::INCEPTION_OFFSET)),
        (
            "dnssec.dnskey_ttl",
            secs(Duration::from_secs(dnssec::DNSKEY_TTL as u64)),
        ),
    ]
};

/// `[checks.NAME] degraded_*` defaults (degraded endpoints; off unless
/// `degraded_latency` or `degraded_success_ratio` is set).
pub mod degraded {
    /// `checks.NAME.degraded_window`: probes the success ratio is counted over.
    pub const WINDOW: u32 = 10;
    /// `checks.NAME.degraded_weight`: weight factor of a degraded endpoint.
    pub const WEIGHT: f64 = 0.25;
}

#[cfg(test)]
mod tests;
