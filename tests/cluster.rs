//! Cluster fault tests: the real `failoverd` binary as three servers and a probe
//! agent, each in its own network namespace, with HTTP backends per region and a DNS
//! client — partitions, isolation, backend deaths, replayed reports, restarts and
//! reloads under load. Needs root (`ip netns`, veth, nftables); skips otherwise.
//!
//! ```sh
//! cargo test --test cluster -- --test-threads=2 --nocapture   # FIGURES lines on stderr
//! FAILOVERD_LEGACY=1 FAILOVERD_BIN=/path/to/old/failoverd cargo test --test cluster
//! ```
//!
//! - `FAILOVERD_BIN`: the binary to run (default: the one cargo built).
//! - `FAILOVERD_LEGACY=1`: write configurations the previous release (a50c2d0)
//!   accepts (no `[health] isolation`) and skip the checks of features it lacks.
//! - `FAILOVERD_FIGURES=FILE`: also append every `FIGURES …` line to FILE.
//!
//! Every scenario prints one `FIGURES scenario=… key=value …` line before it asserts
//! anything, and collects its failed expectations to report them all at once.

#![allow(unreachable_pub, missing_docs)]

mod support;

// The fixture lives in the shared support tree; the scenarios name its modules from
// the crate root.
use support::cluster::{backend, config, dns, figures, fixture, http, net, node, proxy};

#[path = "cluster/scenarios/mod.rs"]
mod scenarios;
