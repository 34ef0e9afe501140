//! The cluster fault tests' fixture (`tests/cluster.rs`): the real binary as three
//! servers and a probe agent, each in a network namespace of its own, HTTP backends
//! per region, a DNS client, a recording proxy, and the figures each scenario prints.

pub mod backend;
pub mod config;
pub mod dns;
pub mod figures;
pub mod fixture;
pub mod http;
pub mod net;
pub mod node;
pub mod proxy;
