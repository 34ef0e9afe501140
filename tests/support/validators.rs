//! Real validating resolvers on loopback: unbound (a stub zone to the server under
//! test, a DS trust anchor) and delv.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;

use super::dns::{query, raw_udp_wait};
use super::peers::free_port;

/// The validators, unbound and delv (for [`require!`](super::require!)).
pub fn validators() -> super::Need {
    super::require::tool("unbound")?;
    super::require::tool("delv")
}

/// unbound validating `zone` (trust anchor: the DS lines `anchors`) served by
/// `server`, killed on drop.
pub struct Unbound {
    /// Where it answers.
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    /// Starts unbound in the foreground in `dir`.
    pub fn start(dir: &Path, zone: &str, server: SocketAddr, anchors: &[String]) -> Self {
        let port = free_port();
        let log = dir.join("unbound.log");
        let anchors: String = anchors
            .iter()
            .map(|a| format!("  trust-anchor: \"{a}\"\n"))
            .collect();
        let conf = format!(
            r#"server:
  interface: 127.0.0.1
  port: {port}
  do-not-query-localhost: no
  module-config: "validator iterator"
  val-permissive-mode: no
{anchors}  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: "{log}"
  verbosity: 1
  val-log-level: 2
  access-control: 127.0.0.0/8 allow
  root-hints: ""
  local-zone: "test." nodefault
  harden-referral-path: no
  target-fetch-policy: "0 0 0 0 0"
  qname-minimisation: no
  cache-max-negative-ttl: 1
stub-zone:
  name: "{zone}"
  stub-addr: {ip}@{server_port}
remote-control:
  control-enable: no
"#,
            dir = dir.display(),
            log = log.display(),
            ip = server.ip(),
            server_port = server.port(),
        );
        let path = dir.join("unbound.conf");
        std::fs::write(&path, conf).expect("write unbound.conf");
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unbound");
        let unbound = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log,
        };
        let ready = super::wait_until(Duration::from_secs(20), || {
            raw_udp_wait(
                unbound.addr,
                &query("localhost.", RecordType::A).to_vec().unwrap(),
                Duration::from_millis(200),
            )
            .is_some()
        });
        assert!(ready, "unbound did not start:\n{}", unbound.log_text());
        unbound
    }

    /// Its log (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks it with RD, DO and AD set (EDNS 1232).
    pub fn ask(&self, name: &str, rtype: RecordType) -> Message {
        let mut message = query(name, rtype);
        message.metadata.recursion_desired = true;
        message.metadata.authentic_data = true;
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(true);
        message.set_edns(edns);
        let reply = super::dns::raw_udp_wait(
            self.addr,
            &message.to_vec().expect("encode"),
            Duration::from_secs(10),
        )
        .expect("unbound replies");
        Message::from_vec(&reply).expect("decodable")
    }

    /// Asserts that `name`/`rtype` validates (AD) with `rcode`; returns the reply.
    pub fn expect_secure(&self, name: &str, rtype: RecordType, rcode: ResponseCode) -> Message {
        let reply = self.ask(name, rtype);
        assert_eq!(
            reply.metadata.response_code,
            rcode,
            "{name} {rtype}: rcode\n{reply}\n{}",
            self.log_tail()
        );
        assert!(
            reply.metadata.authentic_data,
            "{name} {rtype}: AD not set (not validated)\n{reply}\n{}",
            self.log_tail()
        );
        reply
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Runs delv against `server` with the DS anchors, for `name`/`rtype`; returns its
/// output (stdout and stderr).
pub fn delv(
    dir: &Path,
    server: SocketAddr,
    zone: &str,
    ds: &[String],
    name: &str,
    rtype: &str,
) -> String {
    let anchor = dir.join("delv-anchor.conf");
    let mut text = String::from("trust-anchors {\n");
    for line in ds {
        // "zone. DS tag alg digest-type digest"
        let fields: Vec<&str> = line.split_whitespace().collect();
        text.push_str(&format!(
            "  {} static-ds {} {} {} \"{}\";\n",
            fields[0], fields[2], fields[3], fields[4], fields[5]
        ));
    }
    text.push_str("};\n");
    std::fs::write(&anchor, text).expect("anchor");
    let output = Command::new("delv")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg("-a")
        .arg(&anchor)
        .arg(format!("+root={zone}"))
        .arg(name)
        .arg(rtype)
        .output()
        .expect("run delv");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
