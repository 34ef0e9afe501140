//! The cluster's configuration files: one per node (they differ only in the state
//! file and, for an agent behind the recording proxy, the server list), a zone file,
//! in two flavours — NEW (the default) with the keys of the build under test, and
//! LEGACY (`FAILOVERD_LEGACY=1`) without the keys the previous release does not know.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Which configuration keys the binary under test knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// The new build: `[health] isolation` and friends.
    New,
    /// The previous release (a50c2d0): none of the new keys.
    Legacy,
}

impl Flavour {
    /// `Legacy` when `FAILOVERD_LEGACY=1`, else `New`.
    pub fn from_env() -> Self {
        match std::env::var("FAILOVERD_LEGACY").as_deref() {
            Ok("1") => Self::Legacy,
            _ => Self::New,
        }
    }

    /// Name for figures.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Legacy => "legacy",
        }
    }
}

/// The operators' admin token in the NEW flavour.
pub const OPERATE_TOKEN: &str = "cluster-test-operate-token-0123";

/// A vantage point: its name, region and secret.
#[derive(Clone, Debug)]
pub struct Vantage {
    /// `v1` … `v4`.
    pub name: String,
    /// `west` or `east`.
    pub region: String,
    /// Its signing secret (≥ 16 bytes).
    pub secret: String,
}

/// Everything the cluster's configuration files say.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The flavour written.
    pub flavour: Flavour,
    /// `[health] isolation` ("hold" or "local"); None leaves the default.
    pub isolation: Option<&'static str>,
    /// TTL of `www`.
    pub ttl: u32,
    /// Every vantage point (servers and agents).
    pub vantages: Vec<Vantage>,
    /// Admin base URLs of the servers (`[health] servers`).
    pub servers: Vec<String>,
    /// The west backend's address.
    pub west: Ipv4Addr,
    /// The east backend's address.
    pub east: Ipv4Addr,
    /// Address of the name server in the zone's NS glue.
    pub ns_address: Ipv4Addr,
    /// Where the files go.
    pub dir: PathBuf,
}

/// What differs between the nodes' files.
#[derive(Clone, Debug, Default)]
pub struct NodeFile {
    /// `[health] state_file`, if any.
    pub state_file: Option<PathBuf>,
    /// `[health] servers` replacing the cluster's (an agent reporting via a proxy).
    pub servers: Option<Vec<String>>,
}

impl ClusterConfig {
    /// Writes the zone file; call once before writing node files.
    pub fn write_zone(&self) {
        let zones = self.dir.join("zones");
        std::fs::create_dir_all(&zones).expect("zones dir");
        let zone = format!(
            "$ORIGIN gslb.test.\n\
             $TTL 300\n\
             @    60 IN SOA ns1.gslb.test. hostmaster.gslb.test. 2026120101 3600 900 604800 60\n\
             \x20       IN NS  ns1\n\
             ns1     IN A   {ns}\n\
             static  IN TXT \"cluster test\"\n",
            ns = self.ns_address
        );
        std::fs::write(zones.join("gslb.test.zone"), zone).expect("write zone");
        // A secret file: refused unless only its owner may read it.
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut token = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(self.token_file())
                .expect("create token");
            token
                .write_all(OPERATE_TOKEN.as_bytes())
                .expect("write token");
        }
    }

    /// The file holding the operators' admin token (NEW flavour).
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("operate.token")
    }

    /// The configuration text of one node.
    pub fn render(&self, node: &NodeFile) -> String {
        let mut text = String::new();
        let servers = node
            .servers
            .as_ref()
            .unwrap_or(&self.servers)
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            text,
            r#"# failoverd cluster test ({flavour} flavour)
version = 1

[server]
listen = ["127.0.0.1:53"]
udp_workers = 1

[zones]
directory = "zones"
files = ["gslb.test.zone"]

[regions.west]
[regions.east]

[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2

[pools.west]
region = "west"
check = "web"
endpoints = [{{ address = "{west}", name = "w1" }}]

[pools.east]
region = "east"
check = "web"
endpoints = [{{ address = "{east}", name = "e1" }}]

[[records]]
name = "www.gslb.test"
type = "A"
ttl = {ttl}
policy = "failover"
pools = ["west", "east"]

[health]
servers = [{servers}]
staleness = "1500ms"
push_interval = "100ms"
"#,
            flavour = self.flavour.name(),
            port = super::backend::PORT,
            west = self.west,
            east = self.east,
            ttl = self.ttl,
        );
        if let Some(path) = &node.state_file {
            let _ = writeln!(text, "state_file = \"{}\"", path.display());
        }
        if self.flavour == Flavour::New {
            if let Some(mode) = self.isolation {
                let _ = writeln!(text, "isolation = \"{mode}\"");
            }
            // Changes need a token from beyond loopback; reads stay open for the
            // scenarios' status and metrics polling.
            let _ = write!(
                text,
                "\n[admin]\npublic = [\"healthz\", \"readyz\", \"metrics\", \"status\"]\n\
                 [[admin.tokens]]\nname = \"ops\"\nrole = \"operate\"\nfile = \"{}\"\n",
                self.token_file().display()
            );
        }
        for vantage in &self.vantages {
            let _ = write!(
                text,
                "\n[vantages.{}]\nregion = \"{}\"\nsecret = \"{}\"\n",
                vantage.name, vantage.region, vantage.secret
            );
        }
        text
    }

    /// Writes one node's file as `<name>.toml`; returns its path.
    pub fn write(&self, name: &str, node: &NodeFile) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        write_atomically(&path, &self.render(node));
        path
    }

    /// The vantage named `name`.
    pub fn vantage_mut(&mut self, name: &str) -> &mut Vantage {
        self.vantages
            .iter_mut()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vantage {name}"))
    }
}

/// Replaces `path` with `text` in one rename, so a reload never reads half a file.
pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).expect("write config");
    std::fs::rename(&temporary, path).expect("rename config");
}
