//! The Route 53 sync agent: keeps Route 53 hosted zones in step with the records
//! failoverd serves, as a managed backend or a second provider.
//!
//! ```text
//!   Config + zones + HealthSnapshot
//!        │ desired (pure)                     route53 (the only SDK user)
//!        ▼                                     ▲          │
//!   DesiredState ──┐                           │ read     │ apply
//!                  ├─▶ plan (pure) ─▶ Plan ─▶ batch (pure) ─▶ apply ─▶ ApplyReport
//!   CurrentState ──┘      ▲ ownership (owner): TXT markers, health-check tags
//!        ▲
//!   agent: read → plan → guard → apply, once or in a loop (sync_interval, debounced
//!          health changes for mirror mode), with metrics
//! ```
//!
//! - [`model`]: record sets keyed by (name, type, set identifier), health checks.
//! - [`desired`]: what Route 53 should hold (native and mirror modes, static records).
//! - [`owner`]: ownership markers and tags.
//! - [`plan`]: the pure diff, with conflicts and the safety guard.
//! - [`batch`]: ChangeResourceRecordSets batches within Route 53's limits.
//! - [`pace`]: token bucket and backoff arithmetic.
//! - [`route53`]: the adapter over `aws-sdk-route53` behind the [`route53::Route53Api`]
//!   trait, and the paced [`route53::Route53Client`].
//! - [`apply`]: applying a plan (bisection of rejected batches, INSYNC waits).
//! - [`agent`]: the reconcile run and loop.
//! - [`metrics`]: counters rendered as Prometheus text.
//! - [`health_feed`]: health from a failoverd server's admin API (mirror mode).

pub(crate) mod agent;
pub(crate) mod apply;
pub(crate) mod batch;
pub(crate) mod desired;
pub(crate) mod health_feed;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod owner;
pub(crate) mod pace;
pub(crate) mod plan;
pub(crate) mod route53;
#[cfg(test)]
pub(crate) mod simulate;

pub(crate) use self::agent::{Agent, AgentError};
pub(crate) use self::plan::Plan;
