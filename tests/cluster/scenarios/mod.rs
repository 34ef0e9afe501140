//! One module per scenario.

mod isolated_server;
mod overrides_partition;
mod partitioned_agent;
mod peer_link_cut;
mod replay;
mod replication;
mod restart;
mod sighup;
