//! failoverd: an authoritative DNS server answering from health-weighted regional
//! pools of endpoints.
//!
//! Layers (lowest first): a module may use its own layer's modules and those of the
//! layers above it in this list, never one below (`tests/layers.rs` checks every
//! file, and that no files import each other in a cycle):
//!
//! ```text
//! model, proto
//! runtime, json_file, logs, telemetry
//! config
//! zone, health
//! dnssec, policy, probe
//! api
//! dns, sync
//! ops
//! admin
//! service
//! cli
//! testing
//! ```
//!
//! - [`config`]: TOML `Spec` types validated into a typed [`config::Config`], with every
//!   error reported at its key path.
//! - [`zone`]: RFC 1035 zone files in an indexed store; dynamic names bound into it.
//! - [`health`]: endpoint health as the answer path sees it.
//! - [`policy`]: the pure policy engine (failover, weighted, multivalue, geo).
//! - [`dnssec`]: keys, RRSIGs and the NSEC3/NSEC chain, all made at snapshot build.
//! - [`dns`]: wire parsing, resolution, pre-encoded answers, UDP/TCP listeners.
//! - [`ops`]: pure operator views (status, change narration) the plane publishes.
//! - [`service`]: wiring for `failoverd serve` (load, serve, reload, shut down).
//! - [`sync`]: the Route 53 sync agent (desired state, pure plan, batching, apply).
//! - [`logs`]: escaping of logged values and per-site log rate limits.
//! - [`telemetry`]: metric names, the answer path's per-thread counters, `/metrics`
//!   through a `prometheus-client` registry, the event log.
//!
//! Every module is `pub(crate)` but `cli`, whose `main` the binary calls. What the
//! integration tests drive is re-exported, under the `testing` feature only, from
//! `testing` (one list, mirroring the module paths); those items are declared
//! `#[cfg_attr(feature = "testing", visibility::make(pub))] pub(crate)`.

#![warn(clippy::print_stdout)]

pub(crate) mod admin;
pub(crate) mod api;
#[allow(clippy::print_stdout)]
pub mod cli;
pub(crate) mod config;
pub(crate) mod dns;
pub(crate) mod dnssec;
pub(crate) mod health;
pub(crate) mod json_file;
pub(crate) mod logs;
pub(crate) mod model;
pub(crate) mod ops;
pub(crate) mod policy;
pub(crate) mod probe;
pub(crate) mod proto;
pub(crate) mod runtime;
pub(crate) mod service;
pub(crate) mod sync;
pub(crate) mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub(crate) mod zone;
