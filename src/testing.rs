//! What the integration tests (`tests/`) drive: the one list of the library's items
//! outside the crate, under the `testing` feature only (the self dev-dependency in
//! `Cargo.toml` turns it on for `cargo test`). Not a stable API.
//!
//! The modules mirror the library's paths, so a test names
//! `failoverd::testing::config::Config` where the library says `crate::config::Config`.
//! An item listed here is declared
//! `#[cfg_attr(feature = "testing", visibility::make(pub))] pub(crate)`: `pub(crate)`
//! in the shipped build, `pub` in this one.

/// The admin API's `/v1` types.
pub mod api {
    pub use crate::api::OverrideSync;
}

/// The validated configuration and its loading.
pub mod config {
    pub use crate::config::checks::CheckKind;
    pub use crate::config::diagnostics::Diagnostics;
    pub use crate::config::records::Selection;
    pub use crate::config::server::RrlConfig;
    pub use crate::config::transfer::{TsigAlgorithm, TsigKey};
    pub use crate::config::{Config, ConfigSource, Secret};
}

/// The DNS server: snapshots, the responder, listeners and zone transfers.
pub mod dns {
    pub use crate::dns::DnsServer;
    pub use crate::dns::answers::Snapshot;
    pub use crate::dns::engine::{Responder, Transport};
    pub use crate::dns::snapshot::SharedSnapshot;
    pub use crate::dns::transfer::TransferHandler;

    /// The answer engine.
    pub mod engine {
        pub use crate::dns::engine::Outcome;
    }

    /// Response rate limiting.
    pub mod rrl {
        pub use crate::dns::rrl::ResponseClass;
    }

    /// The UDP listener.
    pub mod udp {
        pub use crate::dns::udp::grow_buffers;
    }

    /// Zone transfers.
    pub mod xfr {
        pub use crate::dns::xfr::TransferState;

        /// SOA serial arithmetic.
        pub mod serial {
            pub use crate::dns::xfr::serial::is_newer;
        }

        /// TSIG signing and verification.
        pub mod tsig {
            pub use crate::dns::xfr::tsig::{error, sign_request, sign_request_with, split};
        }
    }
}

/// DNSSEC keys, signing and the NSEC3 chain.
pub mod dnssec {
    pub use crate::dnssec::Signing;
    pub use crate::dnssec::keys::{Algorithm, Key, Role, Timing};

    /// The NSEC3 chain.
    pub mod chain {
        pub use crate::dnssec::chain::{base32hex, nsec3_hash};
    }

    /// Keys and their timing.
    pub mod keys {
        pub use crate::dnssec::keys::{Algorithm, Key, Role, Timing, parent_records};
        pub use crate::runtime::clock::unix_now;
    }
}

/// Endpoint health as the answer path sees it.
pub mod health {
    pub use crate::health::{EndpointHealth, HealthSnapshot, HealthSource};

    /// Operator overrides.
    pub mod overrides {
        pub use crate::health::overrides::{Action, Entry, Percent, Stamp, Target};
    }

    /// Peer replication.
    pub mod peering {
        pub use crate::health::peering::sign_peer;
    }

    /// Vantage point reports.
    pub mod report {
        pub use crate::health::report::{
            CHALLENGE_HEADER, Report, SIGNATURE_HEADER, VANTAGE_HEADER, Verdict, sign,
        };
    }
}

/// Logged values.
pub mod logs {
    pub use crate::logs::escape::needs_escape;
}

/// The shared model types.
pub mod model {
    pub use crate::model::{EndpointIndex, HealthState, RandomSource, SplitMix64};
}

/// Operator views.
pub mod ops {
    /// Runbook commands.
    pub mod runbook {
        pub use crate::ops::runbook::{RunbookCommand, commands};
    }
}

/// Health probing.
pub mod probe {
    pub use crate::probe::check::Prober;

    /// Reporting to servers.
    pub mod reporter {
        pub use crate::runtime::clock::unix_ms;
    }
}

/// Process and network runtime helpers.
pub mod runtime {
    pub use crate::runtime::raise_descriptor_limit;

    /// HTTP clients.
    pub mod http {
        pub use crate::runtime::http::client_config;
    }
}

/// `failoverd serve`: load, serve, reload, shut down.
pub mod service {
    pub use crate::config::Reader;
    pub use crate::service::{Service, StartOptions, load};
}

/// The Route 53 sync agent.
pub mod sync {
    pub use crate::sync::agent::{Agent, RunReport};
    pub use crate::sync::plan::Plan;

    /// The agent loop.
    pub mod agent {
        pub use crate::sync::agent::AgentError;
    }

    /// Applying a plan.
    pub mod apply {
        pub use crate::sync::apply::{ApplyError, ApplyReport};
    }

    /// Health from a server's admin API.
    pub mod health_feed {
        pub use crate::sync::health_feed::HealthFeed;
    }

    /// The agent's metrics.
    pub mod metrics {
        pub use crate::sync::metrics::SyncMetrics;
    }

    /// Poll and retry pacing.
    pub mod pace {
        pub use crate::sync::pace::{PollPolicy, RetryPolicy};
    }

    /// The pure plan.
    pub mod plan {
        pub use crate::sync::plan::{HealthCheckChange, RecordChange, Refusal};
    }

    /// The Route 53 client.
    pub mod route53 {
        pub use crate::sync::route53::aws::SdkRoute53;
        pub use crate::sync::route53::client::{ClientOptions, Route53Client};
    }
}

/// Zone files and names.
pub mod zone {
    pub use crate::zone::ZoneSet;

    /// Domain names.
    pub mod name {
        pub use crate::zone::name::{text_from_wire, wire_from_text};
    }
}
