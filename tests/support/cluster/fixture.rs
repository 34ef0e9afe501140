//! The standard cluster of every scenario: three servers (s1 in west, s2 and s3 in
//! east), one probe agent (a4, west), a healthy backend per region, and a client —
//! each in its own namespace of a private network.
//!
//! | node | vantage | region | address |
//! |---|---|---|---|
//! | s1, s2, s3 | v1, v2, v3 | west, east, east | 10.231.N.11–13 (DNS :53, admin :9353) |
//! | a4 | v4 | west | 10.231.N.14 (recording proxy :9480 when asked for) |
//! | west, east | | | 10.231.N.21, .31 (HTTP :8080) |
//! | client | | | 10.231.N.50 |

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::super::Need;
use super::backend::Backend;
use super::config::{ClusterConfig, Flavour, NodeFile, Vantage};
use super::dns::{self, WWW};
use super::http::{self, Response};
use super::net::Net;
use super::node::{Launch, Node, probe_args, serve_args};
use super::proxy::Proxy;

/// The servers.
pub const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
/// Every node running failoverd.
pub const NODES: [&str; 4] = ["s1", "s2", "s3", "a4"];
/// The admin API port of every server.
pub const ADMIN_PORT: u16 = 9353;
/// The recording proxy's port (in a4's namespace).
pub const PROXY_PORT: u16 = 9480;
/// Endpoint labels.
pub const WEST: &str = "west/w1";
/// Endpoint labels.
pub const EAST: &str = "east/e1";
/// How long a node may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The vantage point of a node.
pub fn vantage_of(node: &str) -> String {
    format!("v{}", &node[1..])
}

/// How a scenario wants its cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Third octet of the test's /24, unique per scenario.
    pub subnet: u8,
    /// `[health] isolation` (NEW flavour only).
    pub isolation: Option<&'static str>,
    /// The agent reports to s1 through the recording proxy.
    pub agent_via_proxy: bool,
    /// Servers with a `[health] state_file`.
    pub state_files: Vec<&'static str>,
}

impl Options {
    /// Defaults for the scenario on `subnet`.
    pub fn new(subnet: u8) -> Self {
        Self {
            subnet,
            isolation: None,
            agent_via_proxy: false,
            state_files: Vec::new(),
        }
    }
}

/// A running cluster; everything is stopped and removed on drop.
pub struct Cluster {
    /// The failoverd processes by name.
    pub nodes: BTreeMap<String, Node>,
    /// The west backend.
    pub west: Backend,
    /// The east backend (healthy throughout; held so that it keeps running).
    #[allow(dead_code)]
    pub east: Backend,
    /// The recording proxy, when asked for.
    pub proxy: Option<Proxy>,
    /// What the configuration files say.
    pub config: ClusterConfig,
    /// Per-node differences of the configuration files.
    pub files: BTreeMap<String, NodeFile>,
    /// Configuration file of each node.
    pub paths: BTreeMap<String, PathBuf>,
    /// Temporary directory of configs, zones and state files.
    pub dir: tempfile::TempDir,
    /// The namespaces (dropped last).
    pub net: Net,
}

impl Cluster {
    /// Builds the network, writes the configuration, starts backends and nodes, and
    /// waits until every server has every vantage point's vote and answers west.
    /// What is missing when namespaces are not available (for
    /// [`require!`](crate::support::require!)).
    pub fn start(options: &Options) -> Need<Self> {
        let net = Net::create(options.subnet)?;
        let dir = tempfile::tempdir().expect("tempdir");
        let admin_url = |node: &str| format!("http://{}:{ADMIN_PORT}", net.addr(node));
        let regions = [
            ("s1", "west"),
            ("s2", "east"),
            ("s3", "east"),
            ("a4", "west"),
        ];
        let config = ClusterConfig {
            flavour: Flavour::from_env(),
            isolation: options.isolation,
            ttl: 5,
            vantages: regions
                .iter()
                .map(|(node, region)| Vantage {
                    name: vantage_of(node),
                    region: (*region).to_owned(),
                    secret: format!(
                        "secret-of-{}-t{}-0123456789",
                        vantage_of(node),
                        options.subnet
                    ),
                })
                .collect(),
            servers: SERVERS.iter().map(|s| admin_url(s)).collect(),
            west: net.addr("west"),
            east: net.addr("east"),
            ns_address: net.addr("s1"),
            dir: dir.path().to_path_buf(),
        };
        config.write_zone();
        let mut files = BTreeMap::new();
        for node in NODES {
            let mut file = NodeFile::default();
            if options.state_files.contains(&node) {
                file.state_file = Some(dir.path().join(format!("{node}-state.json")));
            }
            if node == "a4" && options.agent_via_proxy {
                let proxy = format!("http://{}:{PROXY_PORT}", net.addr("a4"));
                file.servers = Some(
                    config
                        .servers
                        .iter()
                        .map(|s| {
                            if *s == admin_url("s1") {
                                proxy.clone()
                            } else {
                                s.clone()
                            }
                        })
                        .collect(),
                );
            }
            files.insert(node.to_owned(), file);
        }
        let paths = NODES
            .iter()
            .map(|n| ((*n).to_owned(), config.write(n, &files[*n])))
            .collect();
        let west = Backend::start(&net, "west");
        let east = Backend::start(&net, "east");
        let proxy = options.agent_via_proxy.then(|| {
            Proxy::start(
                &net,
                "a4",
                SocketAddr::from((net.addr("a4"), PROXY_PORT)),
                SocketAddr::from((net.addr("s1"), ADMIN_PORT)),
            )
        });
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            west,
            east,
            proxy,
            config,
            files,
            paths,
            dir,
            net,
        };
        for node in NODES {
            let launch = cluster.launch(node);
            cluster
                .nodes
                .insert(node.to_owned(), Node::spawn(node, launch));
        }
        for node in NODES {
            cluster.wait_ready(node);
        }
        cluster.wait_converged(Duration::from_secs(20));
        Ok(cluster)
    }

    /// How `node` is started from its current configuration file.
    pub fn launch(&self, node: &str) -> Launch {
        let config = &self.paths[node];
        let args = if node.starts_with('s') {
            let ip = self.net.addr(node);
            serve_args(
                config,
                &vantage_of(node),
                &format!("{ip}:53"),
                &format!("{ip}:{ADMIN_PORT}"),
            )
        } else {
            probe_args(config, &vantage_of(node))
        };
        Launch {
            ns: self.net.ns(node),
            args,
        }
    }

    /// Waits for `node`'s ready line; panics (with its log) when it does not come.
    pub fn wait_ready(&self, node: &str) {
        let n = &self.nodes[node];
        assert!(
            n.wait_for_word("ready", START_TIMEOUT).is_some(),
            "{node} printed no ready line within {START_TIMEOUT:?}:\n{}",
            n.tail(40).join("\n")
        );
    }

    /// Waits until every server counts a vote of every vantage point on both
    /// endpoints and answers west.
    pub fn wait_converged(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for server in SERVERS {
            let voted = wait_until(deadline, || {
                let status = self.status(server);
                NODES.iter().all(|n| {
                    let vantage = vantage_of(n);
                    (*n == server || is_fresh(&status, &vantage))
                        && [WEST, EAST]
                            .iter()
                            .all(|e| raw_vote(&status, e, &vantage).is_some())
                })
            });
            assert!(
                voted,
                "{server} never counted every vantage point's vote: {}",
                self.status(server)
            );
            let west = self.net.addr("west");
            let answers = wait_until(deadline, || {
                dns::ask(&self.net, self.net.addr(server), WWW)
                    .is_some_and(|r| r.addresses == [west.to_string()])
            });
            assert!(answers, "{server} does not answer west");
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[name]
    }

    /// The node named `name`, mutably.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.get_mut(name).expect("node")
    }

    /// The address of `role`.
    pub fn addr(&self, role: &str) -> Ipv4Addr {
        self.net.addr(role)
    }

    /// A server's admin API address.
    pub fn admin(&self, server: &str) -> SocketAddr {
        SocketAddr::from((self.net.addr(server), ADMIN_PORT))
    }

    /// `GET path` on a server's admin API, from the server's own namespace.
    pub fn get(&self, server: &str, path: &str) -> Response {
        let (addr, path) = (self.admin(server), path.to_owned());
        self.net.run_in(server, move || http::get(addr, &path))
    }

    /// A server's `/status` JSON (Null when it does not answer).
    pub fn status(&self, server: &str) -> serde_json::Value {
        self.get(server, "/status").json()
    }

    /// A server's `/metrics` text (empty when it does not answer).
    pub fn metrics(&self, server: &str) -> String {
        self.get(server, "/metrics").body
    }

    /// Rewrites `node`'s configuration file from the current [`Cluster::config`].
    pub fn rewrite(&self, node: &str) {
        self.config.write(node, &self.files[node]);
    }

    /// SIGKILLs `node` and reaps it.
    pub fn kill(&mut self, node: &str) {
        self.node_mut(node).kill();
    }

    /// Starts `node` (killed before) again from its configuration file and waits for
    /// its ready line.
    pub fn relaunch(&mut self, node: &str) {
        let launch = self.launch(node);
        self.node_mut(node).restart(Some(launch.args));
        self.wait_ready(node);
    }

    /// SIGKILLs `node`, then starts it again from its configuration file and waits
    /// for its ready line.
    pub fn restart(&mut self, node: &str) {
        self.kill(node);
        self.relaunch(node);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, node) in &self.nodes {
                eprintln!("---- last log lines of {name} ----");
                for line in node.tail(25) {
                    eprintln!("{line}");
                }
            }
        }
        for node in self.nodes.values_mut() {
            node.kill();
        }
    }
}

/// The vote of `vantage` on `endpoint` in a `/status` document if it is counted,
/// e.g. `"down: connect refused"` (not `"down (not counted)"`).
pub fn counted_vote(status: &serde_json::Value, endpoint: &str, vantage: &str) -> Option<String> {
    let vote = raw_vote(status, endpoint, vantage)?;
    let counted =
        (vote.starts_with("up") || vote.starts_with("down")) && !vote.contains("not counted");
    counted.then_some(vote)
}

/// The `/status` entry of `endpoint`.
pub fn endpoint_status<'a>(
    status: &'a serde_json::Value,
    endpoint: &str,
) -> Option<&'a serde_json::Value> {
    status["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["endpoint"] == endpoint)
}

/// Whether `vantage` is listed fresh in a `/status` document.
pub fn is_fresh(status: &serde_json::Value, vantage: &str) -> bool {
    status["vantages"].as_array().is_some_and(|vs| {
        vs.iter()
            .any(|v| v["name"] == vantage && v["fresh"].as_bool() == Some(true))
    })
}

/// Polls `condition` every 20 ms until it holds (true) or `deadline` passes (false).
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A deadline `within` from now.
pub fn after(within: Duration) -> Instant {
    Instant::now() + within
}

/// The vote of `vantage` on `endpoint` as `/status` shows it, counted or not, as
/// text: a string as it stands (`"up"`, `"down: status 503"`, `"down (not
/// counted)"`), or an object's `state`/`vote` field with `" (not counted)"` added when
/// its `counted` is false.
pub fn raw_vote(status: &serde_json::Value, endpoint: &str, vantage: &str) -> Option<String> {
    let vote = &endpoint_status(status, endpoint)?["votes"][vantage];
    if let Some(text) = vote.as_str() {
        return Some(text.to_owned());
    }
    let state = vote["state"].as_str().or_else(|| vote["vote"].as_str())?;
    let mut text = state.to_owned();
    if vote["counted"] == false {
        text.push_str(" (not counted)");
    }
    Some(text)
}

/// Whether `vantage` is flagged partitioned in a `/status` document.
pub fn is_partitioned(status: &serde_json::Value, vantage: &str) -> bool {
    status["vantages"].as_array().is_some_and(|vs| {
        vs.iter()
            .any(|v| v["name"] == vantage && v["partitioned"].as_bool() == Some(true))
    })
}

/// Sleeps until `instant`: the end of an observation period (what must hold during
/// it is checked by the watchers, not by the sleep).
pub fn observe_until(instant: Instant) {
    let now = Instant::now();
    if instant > now {
        std::thread::sleep(instant - now);
    }
}
