//! Knot and NSD, started by the tests on loopback as peers to compare with.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free for both UDP and TCP on 127.0.0.1 (for daemons that cannot bind 0).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A zone a peer serves from a file.
pub struct ZoneFile {
    /// Origin without trailing dot.
    pub origin: String,
    /// The zone file.
    pub path: PathBuf,
}

/// A peer daemon, killed on drop.
pub struct Peer {
    /// "Knot" or "NSD".
    pub name: &'static str,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// knotd serving `zones` on a free port, working in `dir`.
    pub fn knot(dir: &Path, zones: &[ZoneFile]) -> Self {
        let dir = dir.join("knot");
        std::fs::create_dir_all(&dir).expect("knot dir");
        let port = free_port();
        let mut conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    \
             tcp-workers: 1\n    background-workers: 1\nlog:\n  - target: \"{d}/knot.log\"\n    \
             any: info\ndatabase:\n    storage: \"{d}\"\ntemplate:\n  - id: default\n    \
             storage: \"{d}\"\n    zonefile-sync: -1\n    journal-content: none\nzone:\n",
            d = dir.display()
        );
        for zone in zones {
            conf.push_str(&format!(
                "  - domain: {}\n    file: \"{}\"\n",
                zone.origin,
                zone.path.display()
            ));
        }
        std::fs::write(dir.join("knot.conf"), conf).expect("knot.conf");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn knotd");
        Self::ready("Knot", port, child, &zones[0].origin)
    }

    /// nsd serving `zones` on a free port, working in `dir`.
    pub fn nsd(dir: &Path, zones: &[ZoneFile]) -> Self {
        let dir = dir.join("nsd");
        std::fs::create_dir_all(&dir).expect("nsd dir");
        let port = free_port();
        let d = dir.display();
        let mut conf = format!(
            "server:\n    ip-address: 127.0.0.1@{port}\n    port: {port}\n    username: \"\"\n    \
             chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    zonelistfile: \
             \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    \
             pidfile: \"{d}/nsd.pid\"\n    logfile: \"{d}/nsd.log\"\n    server-count: 1\n    \
             verbosity: 1\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
             remote-control:\n    control-enable: no\n"
        );
        for zone in zones {
            conf.push_str(&format!(
                "zone:\n    name: \"{}\"\n    zonefile: \"{}\"\n",
                zone.origin,
                zone.path.display()
            ));
        }
        std::fs::write(dir.join("nsd.conf"), conf).expect("nsd.conf");
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(dir.join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nsd");
        Self::ready("NSD", port, child, &zones[0].origin)
    }

    /// Waits (30 s at most) until the daemon answers the zone's SOA.
    fn ready(name: &'static str, port: u16, child: Child, origin: &str) -> Self {
        let peer = Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let query = super::dns::query(&format!("{origin}."), hickory_proto::rr::RecordType::SOA);
        let bytes = query.to_vec().expect("encode");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(reply) =
                super::dns::raw_udp_wait(peer.addr, &bytes, Duration::from_millis(200))
                && hickory_proto::op::Message::from_vec(&reply).is_ok_and(|m| !m.answers.is_empty())
            {
                return peer;
            }
            // Not listening yet (the send was refused at once): poll again shortly.
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{name} did not start on port {port}");
    }
}
