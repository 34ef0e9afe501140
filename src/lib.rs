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

#![warn(clippy::print_stdout)]

pub mod admin;
pub mod api;
#[allow(clippy::print_stdout)]
pub mod cli;
pub mod config;
pub mod dns;
pub mod dnssec;
pub mod health;
pub mod json_file;
pub mod logs;
pub mod model;
pub mod ops;
pub mod policy;
pub mod probe;
pub mod proto;
pub mod runtime;
pub mod service;
pub mod sync;
pub mod telemetry;
pub mod zone;
