//! Cluster fault tests: the real `failoverd` binary as three servers and a probe
//! agent, each in its own network namespace, with HTTP backends per region and a DNS
//! client — partitions, isolation, backend deaths, replayed reports, restarts and
//! reloads under load. Needs root (`ip netns`, veth, nftables); skips otherwise.
//!
//! `FAILOVERD_BIN` runs another binary than the one cargo built; `FAILOVERD_LEGACY=1`
//! writes configurations the previous release (a50c2d0) accepts. Every scenario
//! prints one `FIGURES …` line before it asserts anything.

#![allow(unreachable_pub, missing_docs)]

#[path = "cluster/backend.rs"]
mod backend;
#[path = "cluster/config.rs"]
mod config;
#[path = "cluster/dns.rs"]
mod dns;
#[path = "cluster/figures.rs"]
mod figures;
#[path = "cluster/fixture.rs"]
mod fixture;
#[path = "cluster/http.rs"]
mod http;
#[path = "cluster/net.rs"]
mod net;
#[path = "cluster/node.rs"]
mod node;
#[path = "cluster/proxy.rs"]
mod proxy;

#[path = "cluster/scenarios/mod.rs"]
mod scenarios;
