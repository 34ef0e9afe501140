//! `udp_io = "xdp"`: the AF_XDP path answers byte for byte as the batched one, over a
//! veth pair (native XDP, as on a real NIC) and on a namespace's loopback (generic
//! XDP); it refuses to start with the reason when the loopback cannot take it; and
//! its program is gone when the server stops. Needs root (network namespaces,
//! CAP_BPF) and AF_XDP sockets (`require!`: a loud SKIP without them, a failure
//! under CI).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::support::dns::{query, with_edns};
use crate::support::require::{Missing, Need, root, tool};
use crate::support::{binary, data_dir, integration_config, require, stderr_lines};

/// Root (network namespaces, CAP_BPF), `ip`, and a kernel with AF_XDP sockets.
fn xdp() -> Need {
    root("network namespaces and CAP_BPF")?;
    tool("ip")?;
    // SAFETY: a plain socket, closed at once.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(Missing::new(
            format!(
                "a kernel with AF_XDP sockets ({})",
                std::io::Error::last_os_error()
            ),
            "a kernel built with CONFIG_XDP_SOCKETS=y, as Debian's is",
        ));
    }
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    Ok(())
}

/// A network namespace the test creates and removes.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("fxdp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    fn sysctl(&self, key: &str, value: &str) {
        ip(&[
            "netns",
            "exec",
            &self.name,
            "sysctl",
            "-q",
            "-w",
            &format!("{key}={value}"),
        ]);
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.name)).expect("netns");
        std::thread::spawn(move || {
            // SAFETY: moves only this new thread into the namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `failoverd serve` inside a namespace.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Zone text for `name` with `count` 100-octet TXT records.
fn txt_set(name: &str, count: usize) -> String {
    (0..count)
        .map(|i| format!("{name} IN TXT \"{i:03}{}\"\n", "x".repeat(97)))
        .collect()
}

impl Server {
    /// Starts with `listen` and `udp_io`; `Err` holds the output if it exits instead.
    fn start(netns: &Netns, listen: &str, udp_io: &str) -> Result<Self, String> {
        // The test zones plus two large answers: one that fits a frame but not a
        // 1500-octet link, one larger than a frame.
        let dir = tempfile::tempdir().expect("tempdir");
        let zones = dir.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        for entry in std::fs::read_dir(data_dir().join("zones")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), zones.join(entry.file_name())).unwrap();
        }
        let example = zones.join("example.test.zone");
        let mut text = std::fs::read_to_string(&example).unwrap();
        text.push_str(&txt_set("over-mtu", 15));
        text.push_str(&txt_set("over-frame", 30));
        std::fs::write(&example, text).unwrap();
        let config = integration_config()
            .replace(
                "listen = [\"127.0.0.1:0\"]",
                &format!("listen = [\"{listen}\"]\nudp_io = \"{udp_io}\"\nmax_udp_payload = 4096"),
            )
            .replace(
                "directory = \"../zones\"",
                &format!("directory = {zones:?}"),
            );
        let path = dir.path().join("failoverd.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &netns.name, binary(), "serve", "--config"])
            .arg(&path)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn failoverd");
        let rx = stderr_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut log = Vec::new();
        let mut addr = None;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if line.contains("dns listening") {
                        addr = line
                            .split_whitespace()
                            .find_map(|w| w.strip_prefix("udp="))
                            .and_then(|a| a.parse().ok());
                    }
                    let ready = line.contains(" serving addresses=");
                    log.push(line);
                    if let (true, Some(addr)) = (ready, addr) {
                        return Ok(Self {
                            child,
                            addr,
                            log,
                            _dir: dir,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(log.join("\n"))
    }

    fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The queries compared: answers, NXDOMAIN, wildcard, CNAME, large TXT sets (with a
/// 4096-octet EDNS buffer the two largest leave through the socket path; smaller
/// buffers get TC), another zone, and a malformed packet.
fn corpus() -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for (name, rtype) in [
        ("mail.example.test.", RecordType::A),
        ("v6.example.test.", RecordType::AAAA),
        ("nothing.example.test.", RecordType::A),
        ("x.wild.example.test.", RecordType::TXT),
        ("alias1.example.test.", RecordType::A),
        ("big.example.test.", RecordType::TXT),
        ("mx-big.example.test.", RecordType::MX),
        ("over-mtu.example.test.", RecordType::TXT),
        ("over-frame.example.test.", RecordType::TXT),
        ("example.org.", RecordType::A),
    ] {
        for edns in [None, Some(1232), Some(4096)] {
            let mut message = query(name, rtype);
            if let Some(size) = edns {
                message = with_edns(message, size, None);
            }
            all.push(message.to_vec().unwrap());
        }
    }
    all.push(vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0]);
    all
}

/// Sends `bytes` from an address of the route's choosing; the reply, if any in 5 s.
fn raw_udp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(bytes, server).expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn udp_in_datagrams(netns: &Netns) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns.name,
            "nstat",
            "-az",
            "UdpInDatagrams",
        ])
        .output()
        .expect("nstat");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("UdpInDatagrams")).then(|| words.next()?.parse().ok())?
        })
        .expect("UdpInDatagrams")
}

fn xdp_attached(netns: &Netns, device: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", &netns.name, "-d", "link", "show", device])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn over_a_veth_link_the_xdp_path_answers_byte_for_byte_as_the_batched_one() {
    require!(xdp());
    let netns = Netns::new("veth");
    let host = format!("fx{}", std::process::id() % 100_000);
    let _ = Command::new("ip").args(["link", "del", &host]).status();
    ip(&[
        "link",
        "add",
        &host,
        "type",
        "veth",
        "peer",
        "name",
        "srv",
        "netns",
        &netns.name,
    ]);
    ip(&["addr", "add", "10.77.0.1/24", "dev", &host]);
    ip(&["link", "set", &host, "up"]);
    ip(&[
        "-n",
        &netns.name,
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        "srv",
    ]);
    ip(&["-n", &netns.name, "link", "set", "srv", "up"]);

    let xdp = Server::start(&netns, "10.77.0.2:0", "xdp").expect("xdp server");
    let attach = xdp
        .log
        .iter()
        .find(|line| line.contains("dns answering through AF_XDP"))
        .expect("the XDP path started")
        .clone();
    assert!(
        attach.contains("interface=srv") && attach.contains("mode=Driver"),
        "{attach}"
    );
    assert!(xdp_attached(&netns, "srv"));
    let batched = Server::start(&netns, "10.77.0.2:0", "batched").expect("batched server");

    let queries = corpus();
    let before = udp_in_datagrams(&netns);
    let mut large = 0;
    for bytes in &queries {
        let a = raw_udp(xdp.addr, bytes).expect("xdp reply");
        if a.len() > 1472 {
            large += 1;
        }
        let b = raw_udp(batched.addr, bytes).expect("batched reply");
        assert_eq!(a, b, "query {bytes:02x?}");
    }
    // Every query to the XDP server bypassed the UDP stack except the large answers'
    // (those queries too came through XDP; only their answers left by the socket):
    // the only datagrams the namespace's UDP layer received went to the batched server.
    let counted = udp_in_datagrams(&netns) - before;
    assert_eq!(
        counted,
        queries.len() as u64,
        "UDP datagrams seen by the kernel"
    );
    assert_eq!(large, 2, "the two largest answers took the socket path");
    eprintln!(
        "FIGURES xdp veth queries={} identical={} large_via_socket={large} kernel_udp_datagrams={counted}",
        queries.len(),
        queries.len()
    );
    xdp.stop();
    assert!(
        !xdp_attached(&netns, "srv"),
        "the XDP program is detached when the server stops"
    );
    batched.stop();
    let _ = Command::new("ip").args(["link", "del", &host]).status();
}

#[test]
fn on_a_loopback_the_xdp_path_needs_its_two_settings_and_then_answers_as_the_batched_one() {
    require!(xdp());
    let netns = Netns::new("lo");
    let refused = Server::start(&netns, "127.0.0.1:0", "xdp")
        .err()
        .expect("refused without the settings");
    assert!(
        refused.contains("net.ipv4.conf.lo.route_localnet and net.ipv4.conf.lo.accept_local = 1"),
        "{refused}"
    );
    assert!(!xdp_attached(&netns, "lo"), "nothing left attached");
    netns.sysctl("net.ipv4.conf.lo.route_localnet", "1");
    netns.sysctl("net.ipv4.conf.lo.accept_local", "1");
    let xdp = Server::start(&netns, "127.0.0.1:0", "xdp").expect("xdp server");
    assert!(
        xdp.log
            .iter()
            .any(|line| line.contains("AF_XDP") && line.contains("mode=Generic")),
        "{:?}",
        xdp.log
    );
    let batched = Server::start(&netns, "127.0.0.1:0", "batched").expect("batched server");
    let (a, b) = (xdp.addr, batched.addr);
    let compared = netns.run(move || {
        let queries = corpus();
        for bytes in &queries {
            let x = raw_udp(a, bytes).expect("xdp reply");
            let y = raw_udp(b, bytes).expect("batched reply");
            assert_eq!(x, y, "query {bytes:02x?}");
        }
        queries.len()
    });
    assert_eq!(compared, corpus().len());
    xdp.stop();
    batched.stop();
}
