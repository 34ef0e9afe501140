//! Integration tests: real sockets, a real DNS client, the real binary where it matters.

#![allow(unreachable_pub, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

mod abstain;
mod admin_security;
mod cli;
mod config_validation;
mod conformance;
mod ctl;
mod damping;
mod degraded;
mod dials;
mod dnssec;
mod dnstap;
mod docs;
mod drill;
mod equivalence;
mod exec;
mod explain;
mod files;
mod health;
mod latency;
mod logs;
mod observability;
mod operator;
mod pacing;
mod package;
mod page;
mod plane;
mod policies;
mod postgres;
mod protocol;
mod publish;
mod reload;
mod rrl;
mod runbook;
mod secret_files;
mod spill;
mod transfer;
mod transport;
mod vantage;
mod views;
mod xdp;
