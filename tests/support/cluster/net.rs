//! A private network for one test: a hub namespace with a bridge, one namespace per
//! node, veth pairs between them, addresses in a /24 that exists only inside these
//! namespaces — and the faults a test injects into it (a node cut off at the hub, or
//! silent nftables drops inside a node's namespace).
//!
//! ```text
//!   fo<pid>t<n>-s1 ─eth0═══vs1─┐
//!   fo<pid>t<n>-s2 ─eth0═══vs2─┤
//!   …                          ├─ br0 in fo<pid>t<n>-hub
//!   fo<pid>t<n>-client ─eth0══vclient─┘
//! ```
//!
//! Nothing here touches the root namespace's interfaces, routes or sysctls: every
//! interface is created directly inside the namespaces, and every namespace is deleted
//! on drop (also when the test panics).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use super::super::require;
use super::super::{Missing, Need};

/// The namespace roles of a standard cluster and their host numbers in the /24.
pub const HOSTS: &[(&str, u8)] = &[
    ("s1", 11),
    ("s2", 12),
    ("s3", 13),
    ("a4", 14),
    ("west", 21),
    ("east", 31),
    ("client", 50),
];

/// One test's namespaces.
pub struct Net {
    /// Prefix of every namespace name (`fo<pid>t<n>`).
    prefix: String,
    /// Third octet of the test's /24 (`10.231.<subnet>.0/24`).
    subnet: u8,
    /// Node role → host number.
    hosts: BTreeMap<String, u8>,
    /// Namespaces created so far (deleted on drop, hub last).
    created: Vec<String>,
}

/// Whether this process may create network namespaces and filter in them: root,
/// a working `ip netns`, and `nft`.
pub fn available() -> Need {
    require::netns()?;
    require::tool("nft")
}

impl Net {
    /// Creates the hub and one namespace per role in [`HOSTS`], in `10.231.<subnet>.0/24`.
    /// What is missing when namespaces cannot be created at all.
    pub fn create(subnet: u8) -> Need<Self> {
        available()?;
        let prefix = format!("fo{}t{subnet}", std::process::id());
        remove_leftovers();
        let mut net = Self {
            prefix,
            subnet,
            hosts: HOSTS.iter().map(|(r, h)| ((*r).to_owned(), *h)).collect(),
            created: Vec::new(),
        };
        let hub = net.ns("hub");
        if !try_ip(&["netns", "add", &hub]) {
            return Err(Missing::new(
                "working network namespaces (`ip netns add` failed)",
                "run the tests as root where `ip netns add` works, e.g. on a VM",
            ));
        }
        net.created.push(hub.clone());
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let roles: Vec<(String, u8)> = net.hosts.iter().map(|(r, h)| (r.clone(), *h)).collect();
        for (role, host) in roles {
            let ns = net.ns(&role);
            ip(&["netns", "add", &ns]);
            net.created.push(ns.clone());
            let port = hub_port(&role);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ]);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"]);
            let address = format!("{}/24", net.addr_of(host));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        Ok(net)
    }

    /// The namespace name of `role`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The address of host number `host` in this test's /24.
    pub fn addr_of(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.subnet, host)
    }

    /// The address of `role`.
    pub fn addr(&self, role: &str) -> Ipv4Addr {
        let host = self
            .hosts
            .get(role)
            .unwrap_or_else(|| panic!("no node {role} in this network"));
        self.addr_of(*host)
    }

    /// Cuts `role` off completely: its port on the hub bridge goes down.
    pub fn cut(&self, role: &str) {
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &hub_port(role),
            "down",
        ]);
    }

    /// Undoes [`Net::cut`].
    pub fn reconnect(&self, role: &str) {
        ip(&["-n", &self.ns("hub"), "link", "set", &hub_port(role), "up"]);
    }

    /// Silently drops, inside `role`'s namespace, every packet to and from `peers`
    /// (adds to drops already in place).
    pub fn drop_traffic(&self, role: &str, peers: &[Ipv4Addr]) {
        if peers.is_empty() {
            return;
        }
        let set = peers
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let script = format!(
            "table inet fault {{\n\
             \x20 chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}\n\
             \x20 chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}\n\
             }}\n"
        );
        nft(&self.ns(role), &script);
    }

    /// Removes every drop [`Net::drop_traffic`] put in `role`'s namespace.
    pub fn heal(&self, role: &str) {
        // Declaring the table first makes the delete succeed when there is none.
        nft(
            &self.ns(role),
            "table inet fault {}\ndelete table inet fault\n",
        );
    }

    /// Runs `f` on a new thread inside `role`'s namespace; every socket it creates
    /// lives there.
    pub fn spawn_in<T, F>(&self, role: &str, f: F) -> JoinHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        spawn_in_ns(&self.ns(role), f)
    }

    /// Runs `f` inside `role`'s namespace and returns its result.
    pub fn run_in<T, F>(&self, role: &str, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.spawn_in(role, f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Nodes first, the hub last (its ports go with the node namespaces).
        for ns in self.created.iter().rev() {
            let _ = try_ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a new thread that first joins the network namespace `ns`.
pub fn spawn_in_ns<T, F>(ns: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = format!("/var/run/netns/{ns}");
    std::thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: a valid namespace file descriptor; only this thread switches.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            drop(file);
            f()
        })
        .expect("spawn namespace thread")
}

/// The name of `role`'s port on the hub bridge (≤ 15 bytes).
fn hub_port(role: &str) -> String {
    let name = format!("v{role}");
    assert!(name.len() <= 15, "interface name {name} too long");
    name
}

/// Runs `ip ARGS…`; panics with its output when it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `ip ARGS…`; whether it succeeded.
fn try_ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs an nftables script inside namespace `ns`; panics when it fails.
fn nft(ns: &str, script: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write nft script");
    let output = child.wait_with_output().expect("wait for nft");
    assert!(
        output.status.success(),
        "nft in {ns}: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Deletes namespaces left by earlier runs of these tests that were killed before
/// their `Drop` ran: names `fo<pid>t<n>-<role>` whose process no longer exists.
fn remove_leftovers() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("fo")
            .and_then(|rest| rest.split_once('t'))
            .and_then(|(pid, rest)| {
                let (n, _) = rest.split_once('-')?;
                n.parse::<u8>().ok()?;
                pid.parse::<u32>().ok()
            })
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = try_ip(&["netns", "del", name]);
        }
    }
}
