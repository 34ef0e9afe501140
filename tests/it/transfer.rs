//! Hidden primary: real Knot and NSD secondaries transfer failoverd's zones
//! (AXFR/IXFR with TSIG), follow its changes through NOTIFY, and are refused when
//! they should be. The daemons run on loopback from per-test directories; a test
//! needs them (`require!`: a loud SKIP without them, a failure under CI, which
//! installs them: .ci/run).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::backend::{Backend, Mode};
use crate::support::dns::{query, raw_tcp, raw_udp_wait, tcp};
use crate::support::peers::free_port;
use crate::support::require::tool;
use crate::support::{TestServer, poll_during, require, two_backend_config, wait_until};

const A: &str = "127.0.0.2";
const B: &str = "127.0.0.3";
const ZONE: &str = "example.test.";
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzI=";
const WAIT: Duration = Duration::from_secs(30);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The config: pool `web` (A and B, HTTP-probed on `port`) answered by multivalue
/// `app.example.test`, transferred to `secondaries` (ip:port NOTIFY targets) signed
/// with `xfr-key`.
fn config(port: u16, notify: &[SocketAddr], allow: &str, dir: &Path) -> String {
    let notify: Vec<String> = notify.iter().map(|a| format!("\"{a}\"")).collect();
    let head = two_backend_config(
        port,
        "interval = \"100ms\"\ntimeout = \"80ms\"\njitter = \"10ms\"\nrise = 2\nfall = 2",
    );
    format!(
        r#"{head}
[health]
state_file = "{dir}/state.json"
[transfer]
notify_timeout = "200ms"
[[transfer.keys]]
name = "xfr-key"
algorithm = "hmac-sha256"
secret = "{SECRET}"
[[transfer.secondaries]]
name = "test"
zones = ["example.test"]
notify = [{notify}]
allow = ["{allow}"]
key = "xfr-key"
"#,
        dir = dir.display(),
        notify = notify.join(", "),
    )
}

/// A/AAAA answers of `name` at `server` (sorted), or None if it does not answer.
fn answer(server: SocketAddr, name: &str) -> Option<Vec<String>> {
    let reply = raw_udp_wait(
        server,
        &query(name, RecordType::A).to_vec().unwrap(),
        Duration::from_millis(300),
    )?;
    let reply = Message::from_vec(&reply).ok()?;
    if reply.metadata.response_code != ResponseCode::NoError {
        return None;
    }
    let mut got: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    got.sort();
    Some(got)
}

/// The SOA serial `server` answers for the zone.
fn serial(server: SocketAddr) -> Option<u32> {
    let reply = raw_udp_wait(
        server,
        &query(ZONE, RecordType::SOA).to_vec().unwrap(),
        Duration::from_millis(300),
    )?;
    let reply = Message::from_vec(&reply).ok()?;
    reply.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// The static records a secondary must serve exactly as failoverd does.
const STATIC_NAMES: [(&str, RecordType); 4] = [
    ("www.example.test.", RecordType::A),
    ("mail.example.test.", RecordType::AAAA),
    ("example.test.", RecordType::MX),
    ("big.example.test.", RecordType::TXT),
];

fn records(server: SocketAddr, name: &str, rtype: RecordType) -> Vec<String> {
    let reply = tcp(server, &query(name, rtype));
    let mut lines: Vec<String> = reply
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    lines.sort();
    lines
}

/// A secondary daemon, killed on drop.
struct Secondary {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Secondary {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts knotd as a secondary of `primary` on `port`.
    fn knot(dir: &Path, port: u16, primary: SocketAddr) -> Self {
        Self::knot_notified_from(dir, port, primary, "127.0.0.1")
    }

    /// Starts knotd as a secondary of `primary` on `port`, accepting NOTIFY only
    /// from `notify_from`.
    fn knot_notified_from(dir: &Path, port: u16, primary: SocketAddr, notify_from: &str) -> Self {
        let dir = dir.join("knot");
        std::fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
    background-workers: 1
    tcp-workers: 1
    udp-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{d}"
key:
  - id: xfr-key
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: primary
    address: {ip}@{pport}
    key: xfr-key
acl:
  - id: notify_from_primary
    address: {notify_from}
    key: xfr-key
    action: notify
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
zone:
  - domain: example.test
    master: primary
    acl: notify_from_primary
"#,
            d = dir.display(),
            ip = primary.ip(),
            pport = primary.port(),
        );
        std::fs::write(dir.join("knot.conf"), conf).unwrap();
        let log = dir.join("knotd.log");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn knotd");
        Self {
            name: "Knot",
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log,
        }
    }

    /// Starts nsd as a secondary of `primary` on `port`.
    fn nsd(dir: &Path, port: u16, primary: SocketAddr) -> Self {
        let dir = dir.join("nsd");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let primary = format!("{}@{}", primary.ip(), primary.port());
        let conf = format!(
            r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    server-count: 1
    verbosity: 2
    logfile: "{d}/nsd.log"
remote-control:
    control-enable: no
key:
    name: "xfr-key"
    algorithm: hmac-sha256
    secret: "{SECRET}"
zone:
    name: "example.test"
    zonefile: "example.test.zone"
    request-xfr: {primary} xfr-key
    allow-notify: 127.0.0.1 xfr-key
"#
        );
        std::fs::write(dir.join("nsd.conf"), conf).unwrap();
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(dir.join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nsd");
        Self {
            name: "NSD",
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log: dir.join("nsd.log"),
        }
    }
}

/// Waits until `secondary` answers `want` for the dynamic name; the time it took.
fn await_answer(secondary: &Secondary, want: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    let mut last = None;
    let ok = wait_until(within, || {
        last = answer(secondary.addr, "app.example.test.");
        last.as_ref() == Some(&want)
    });
    assert!(
        ok,
        "{}: answer {last:?}, wanted {want:?}; its log:\n{}",
        secondary.name,
        secondary.log()
    );
    started.elapsed()
}

/// Sends a (signed) transfer query over TCP and reads messages until the closing
/// SOA; returns every answer record's `type data` line.
fn transfer_lines(
    server: SocketAddr,
    rtype: RecordType,
    client_serial: Option<u32>,
) -> Vec<String> {
    use std::io::{Read, Write};
    let mut message = query(ZONE, rtype);
    if let Some(serial) = client_serial {
        let soa = hickory_proto::rr::rdata::SOA::new(
            Name::from_ascii("ns1.example.test.").unwrap(),
            Name::from_ascii("hostmaster.example.test.").unwrap(),
            serial,
            3600,
            900,
            604800,
            120,
        );
        message.add_authority(hickory_proto::rr::Record::from_rdata(
            Name::from_ascii(ZONE).unwrap(),
            60,
            RData::SOA(soa),
        ));
    }
    let mut bytes = message.to_vec().unwrap();
    failoverd::testing::dns::xfr::tsig::sign_request(&mut bytes, &test_key(SECRET), unix_now());
    let mut stream = std::net::TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).unwrap();
    let mut lines: Vec<String> = Vec::new();
    let mut serials: Vec<u32> = Vec::new();
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).unwrap();
        let signed = failoverd::testing::dns::xfr::tsig::split(&reply).unwrap();
        assert!(signed.is_some(), "every message is signed");
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        for record in &reply.answers {
            if let RData::SOA(soa) = &record.data {
                serials.push(soa.serial);
                lines.push(format!("SOA {}", soa.serial));
            } else {
                lines.push(format!("{} {}", record.record_type(), record.data));
            }
        }
        let current = serials[0];
        let closing = serials.iter().filter(|s| **s == current).count();
        let incremental =
            lines.get(1).is_some_and(|l| l.starts_with("SOA ")) && serials.get(1) != Some(&current);
        let done = if rtype == RecordType::IXFR && lines.len() == 1 {
            true // up to date: the SOA alone
        } else if incremental {
            closing == 3
        } else {
            closing == 2
        };
        if done && lines.last().is_some_and(|l| *l == format!("SOA {current}")) {
            return lines;
        }
    }
}

fn test_key(secret: &str) -> failoverd::testing::config::TsigKey {
    use base64::Engine as _;
    failoverd::testing::config::TsigKey {
        name: "xfr-key.".into(),
        algorithm: failoverd::testing::config::TsigAlgorithm::HmacSha256,
        secret: failoverd::testing::config::Secret::new(
            base64::engine::general_purpose::STANDARD
                .decode(secret)
                .unwrap(),
        ),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// (a) Knot and NSD load the zone by AXFR with TSIG and answer as failoverd does;
/// (b) a backend dies → failoverd's answer changes → serial bump → NOTIFY → both
/// secondaries serve the new answer (times printed); (c) the secondaries' next
/// transfers are incremental (IXFR from the journal), and so is one we ask for.
#[test]
fn knot_and_nsd_follow_failoverd() {
    require!(tool("knotd"), tool("nsd"));
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    let (knot_port, nsd_port) = (free_port(), free_port());
    let notify = [
        SocketAddr::from(([127, 0, 0, 1], knot_port)),
        SocketAddr::from(([127, 0, 0, 1], nsd_port)),
    ];
    let server = TestServer::start(&config(a.addr.port(), &notify, "127.0.0.1", dir.path()));
    let primary = server.addr;
    assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
        == Some(vec![A.into(), B.into()])));
    let knot = Secondary::knot(dir.path(), knot_port, primary);
    let nsd = Secondary::nsd(dir.path(), nsd_port, primary);

    // (a) Both load the zone (AXFR, TSIG) and answer exactly as failoverd.
    for secondary in [&knot, &nsd] {
        await_answer(secondary, &[A, B], WAIT);
        assert_eq!(
            serial(secondary.addr),
            serial(primary),
            "{}",
            secondary.name
        );
        for (name, rtype) in STATIC_NAMES {
            assert_eq!(
                records(secondary.addr, name, rtype),
                records(primary, name, rtype),
                "{}: {name} {rtype}",
                secondary.name
            );
        }
    }
    assert!(knot.log().contains("AXFR, incoming"), "{}", knot.log());
    assert!(
        nsd.log().contains("TSIG verified with key xfr-key"),
        "{}",
        nsd.log()
    );
    let first = serial(primary).unwrap();

    // (b) B dies: failoverd changes its answer, bumps the serial, notifies.
    b.set(Mode::Refuse);
    assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
        == Some(vec![A.into()])));
    let changed = Instant::now();
    let second = serial(primary).unwrap();
    assert_eq!(second, first.wrapping_add(1), "one change, one serial");
    let mut times = Vec::new();
    for secondary in [&knot, &nsd] {
        await_answer(secondary, &[A], WAIT);
        times.push((secondary.name, changed.elapsed()));
        assert_eq!(serial(secondary.addr), Some(second), "{}", secondary.name);
    }

    // (c) B is back: the secondaries catch up again, incrementally.
    let (_, ixfr_before, _, _) = server.service().transfer().unwrap().metrics().served();
    assert!(ixfr_before >= 1, "the first change went out as IXFR");
    b.set(Mode::Healthy);
    assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
        == Some(vec![A.into(), B.into()])));
    let changed_back = Instant::now();
    let third = serial(primary).unwrap();
    assert_eq!(third, second.wrapping_add(1));
    for secondary in [&knot, &nsd] {
        await_answer(secondary, &[A, B], WAIT);
        times.push((secondary.name, changed_back.elapsed()));
    }
    assert!(
        wait_until(WAIT, || knot.log().contains("IXFR, incoming")),
        "Knot asked for IXFR:\n{}",
        knot.log()
    );
    let (_, ixfr_after, _, _) = server.service().transfer().unwrap().metrics().served();
    assert!(
        ixfr_after >= ixfr_before + 2,
        "{ixfr_before} → {ixfr_after}"
    );
    // Our own IXFR from the first serial: the condensed difference (RFC 1995 §4).
    let diff = transfer_lines(primary, RecordType::IXFR, Some(first));
    assert_eq!(
        diff,
        vec![
            format!("SOA {third}"),
            format!("SOA {first}"),
            format!("SOA {third}"),
            format!("SOA {third}"),
        ],
        "A and B then, A and B now: nothing between"
    );
    let diff = transfer_lines(primary, RecordType::IXFR, Some(second));
    assert_eq!(
        diff,
        vec![
            format!("SOA {third}"),
            format!("SOA {second}"),
            format!("SOA {third}"),
            format!("A {B}"),
            format!("SOA {third}"),
        ]
    );
    let current = transfer_lines(primary, RecordType::IXFR, Some(third));
    assert_eq!(
        current,
        vec![format!("SOA {third}")],
        "up to date: the SOA alone"
    );

    // Knot and NSD sign their NOTIFY answers with the key: each serial's NOTIFY to
    // each of them was acknowledged by a response whose TSIG verified (unsigned ones
    // do not count; the first serial's first attempts left before they started).
    let metrics = server.service().transfer().unwrap().metrics();
    assert!(
        wait_until(WAIT, || {
            let (_, acked, failed) = metrics.notifies();
            failed == 0 && acked == 6
        }),
        "NOTIFY sent, acked, failed: {:?}",
        metrics.notifies()
    );
    println!("NOTIFY sent, acked, failed: {:?}", metrics.notifies());
    println!("change → secondary answer (failoverd answer changed at t=0):");
    println!("| secondary | change | time |");
    println!("|---|---|---|");
    for (i, (name, time)) in times.iter().enumerate() {
        let change = if i < 2 { "B down" } else { "B back" };
        println!(
            "| {name} | {change} | {:.1} ms |",
            time.as_secs_f64() * 1000.0
        );
    }
    drop(a);
}

/// (d) Transfers need an allowed source and the right key.
#[test]
fn unauthorised_transfers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let _b = Backend::start(ip(B), a.addr.port(), None);
    let server = TestServer::start(&config(a.addr.port(), &[], "127.0.0.1", dir.path()));
    let primary = server.addr;
    let axfr = || {
        let mut message = query(ZONE, RecordType::AXFR);
        message.metadata.op_code = OpCode::Query;
        message.to_vec().unwrap()
    };
    let rcode_of = |reply: Option<Vec<u8>>| {
        Message::from_vec(&reply.expect("a reply"))
            .unwrap()
            .metadata
            .response_code
    };
    // Unsigned from an allowed address: REFUSED (the secondary needs the key).
    assert_eq!(rcode_of(raw_tcp(primary, &axfr())), ResponseCode::Refused);
    // Wrong secret: NOTAUTH with BADSIG.
    let mut bad = axfr();
    failoverd::testing::dns::xfr::tsig::sign_request(
        &mut bad,
        &test_key("bm90LXRoZS1zZWNyZXQtYXQtYWxsLTEyMzQ="),
        unix_now(),
    );
    let raw = raw_tcp(primary, &bad).unwrap();
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    let tsig = failoverd::testing::dns::xfr::tsig::split(&raw).unwrap();
    let tsig = tsig.expect("a TSIG with the error").tsig;
    assert_eq!(tsig.error, 16, "BADSIG");
    assert!(tsig.mac.is_empty(), "unsigned");
    // The right key: the zone.
    let lines = transfer_lines(primary, RecordType::AXFR, None);
    assert!(lines.iter().any(|l| l == &format!("A {A}")), "{lines:?}");
    // AXFR over UDP: NOTIMP (TCP only, RFC 5936 §4.2), as Knot and NSD answer.
    let udp = raw_udp_wait(primary, &axfr(), Duration::from_secs(3));
    assert_eq!(rcode_of(udp), ResponseCode::NotImp);
    drop(server);

    // The right key from an address not allowed: REFUSED.
    let other = TestServer::start(&config(a.addr.port(), &[], "192.0.2.0/24", dir.path()));
    let mut signed = axfr();
    failoverd::testing::dns::xfr::tsig::sign_request(&mut signed, &test_key(SECRET), unix_now());
    assert_eq!(
        rcode_of(raw_tcp(other.addr, &signed)),
        ResponseCode::Refused
    );
    let metrics = other.service().transfer().unwrap();
    let mut text = String::new();
    metrics.metrics().render(&mut text);
    assert!(
        text.contains("failoverd_transfers_refused_total{reason=\"acl\"} 1"),
        "{text}"
    );
}

/// (e) Serials survive a restart: the same content keeps its serial, changed
/// content gets a higher one — never a lower.
#[test]
fn serials_persist_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    let text = config(a.addr.port(), &[], "127.0.0.1", dir.path());
    let both = Some(vec![A.to_owned(), B.to_owned()]);
    let start = || {
        let server = TestServer::start(&text);
        assert!(wait_until(WAIT, || server
            .service()
            .transfer()
            .and_then(|t| t.serial(ZONE))
            .is_some()));
        server
    };
    let server = start();
    assert!(wait_until(WAIT, || answer(
        server.addr,
        "app.example.test."
    ) == both));
    let first = serial(server.addr).unwrap();
    drop(server);
    assert!(dir.path().join("state.json.serials.json").exists());

    // Same content after a restart: same serial, throughout.
    let server = start();
    assert!(wait_until(WAIT, || answer(
        server.addr,
        "app.example.test."
    ) == both));
    poll_during(Duration::from_millis(500), |_| {
        assert_eq!(serial(server.addr), Some(first));
    });

    // Changed content: the next serial, kept across the next restart.
    b.set(Mode::Refuse);
    assert!(wait_until(WAIT, || answer(
        server.addr,
        "app.example.test."
    ) == Some(vec![A.into()])));
    let second = serial(server.addr).unwrap();
    assert_eq!(second, first.wrapping_add(1));
    drop(server);
    let server = start();
    assert!(wait_until(WAIT, || answer(
        server.addr,
        "app.example.test."
    ) == Some(vec![A.into()])));
    poll_during(Duration::from_millis(500), |_| {
        assert_eq!(serial(server.addr), Some(second), "b is still down");
    });
    drop(server);

    // B is back while we were down: after the restart the serial is higher.
    b.set(Mode::Healthy);
    let server = start();
    assert!(wait_until(WAIT, || answer(
        server.addr,
        "app.example.test."
    ) == both));
    let third = serial(server.addr).unwrap();
    assert!(
        failoverd::testing::dns::xfr::serial::is_newer(third, second),
        "{third} after {second}"
    );
}

/// TSIG time: a request is on time only within the smaller of its own Fudge and our
/// `tsig_window` (300 s by default), so a request signed 3 h ago with Fudge 65535
/// (which BIND and Knot would take) gets BADTIME; one signed 250 s ago is served,
/// unless the window is narrower.
#[test]
fn a_request_signed_hours_ago_is_badtime_whatever_its_fudge() {
    use failoverd::testing::dns::xfr::tsig;
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let text = config(a.addr.port(), &[], "127.0.0.1", dir.path());
    let server = TestServer::start(&text);
    let signed_at = |time: u64, fudge: u16| {
        let mut message = query(ZONE, RecordType::AXFR).to_vec().unwrap();
        tsig::sign_request_with(&mut message, &test_key(SECRET), time, fudge);
        message
    };
    let now = unix_now();
    let raw = raw_tcp(server.addr, &signed_at(now - 3 * 3600, u16::MAX)).expect("a reply");
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    assert!(reply.answers.is_empty());
    let record = tsig::split(&raw).unwrap().expect("a TSIG").tsig;
    assert_eq!(record.error, tsig::error::BADTIME);
    assert!(!record.mac.is_empty(), "a BADTIME answer is signed");
    // Other data: our time (48 bits), so the client can see its clock is off.
    let mut ours = [0u8; 8];
    ours[2..].copy_from_slice(&record.other);
    assert!(u64::from_be_bytes(ours).abs_diff(unix_now()) <= 5);
    // Within the window, whatever the Fudge: the zone.
    let raw = raw_tcp(server.addr, &signed_at(unix_now() - 250, u16::MAX)).expect("a reply");
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(
        reply
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );
    let mut metrics = String::new();
    server
        .service()
        .transfer()
        .unwrap()
        .metrics()
        .render(&mut metrics);
    assert!(
        metrics.contains("failoverd_transfers_refused_total{reason=\"tsig\"} 1"),
        "{metrics}"
    );
    drop(server);
    // A narrower window of our own: 250 s is too far now.
    let narrow =
        TestServer::start(&text.replace("[transfer]\n", "[transfer]\ntsig_window = \"60s\"\n"));
    let raw = raw_tcp(narrow.addr, &signed_at(unix_now() - 250, u16::MAX)).expect("a reply");
    let record = tsig::split(&raw).unwrap().expect("a TSIG").tsig;
    assert_eq!(record.error, tsig::error::BADTIME);
    let raw = raw_tcp(narrow.addr, &signed_at(unix_now() - 30, u16::MAX)).expect("a reply");
    let reply = Message::from_vec(&raw).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
}

/// The answer TTL `server` gives the dynamic name (None: no answer).
fn answer_ttl(server: SocketAddr) -> Option<u32> {
    let reply = raw_udp_wait(
        server,
        &query("app.example.test.", RecordType::A).to_vec().unwrap(),
        Duration::from_millis(300),
    )?;
    let reply = Message::from_vec(&reply).ok()?;
    reply.answers.first().map(|r| r.ttl)
}

/// NOTIFYs of the zone Knot logged as received (`notify, incoming` lines).
fn notifies_seen(knot: &Secondary) -> usize {
    knot.log()
        .lines()
        .filter(|l| l.contains("notify, incoming"))
        .count()
}

/// A signed zone transferred to a real Knot secondary, with ECDSA (KSK+ZSK, CSK)
/// and Ed25519 keys: a health doubt that changes no answer moves no serial and
/// sends no NOTIFY; one failover moves the serial one step and sends one NOTIFY
/// per secondary (Knot follows). Prints a FIGURES line per key set.
#[test]
fn a_doubt_moves_no_serial_and_a_failover_one_with_every_key_algorithm() {
    use failoverd::testing::dnssec::keys::{Algorithm, Key, Role, Timing};
    require!(tool("knotd"));
    let mut results = Vec::new();
    for (algorithm, roles, label) in [
        (
            Algorithm::EcdsaP256,
            &[Role::Ksk, Role::Zsk][..],
            "ECDSA KSK+ZSK",
        ),
        (Algorithm::EcdsaP256, &[Role::Csk][..], "ECDSA CSK"),
        (Algorithm::Ed25519, &[Role::Csk][..], "Ed25519 CSK"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for &role in roles {
            Key::generate(
                "example.test.",
                role,
                algorithm,
                Timing::from(unix_now() - 60),
            )
            .unwrap()
            .save(&dir.path().join("keys"))
            .unwrap();
        }
        let a = Backend::start(ip(A), 0, None);
        let b = Backend::start(ip(B), a.addr.port(), None);
        let knot_port = free_port();
        let notify = [SocketAddr::from(([127, 0, 0, 1], knot_port))];
        // Failures short of `fall` = 5 put B in doubt (the answer's TTL drops below
        // 60) without changing the answer.
        let text = config(a.addr.port(), &notify, "127.0.0.1", dir.path())
            .replace("ttl = 5\n", "ttl = 60\n")
            .replace("fall = 2\n", "fall = 5\n")
            .replace("notify_timeout = \"200ms\"", "notify_timeout = \"2s\"")
            + &format!(
                "[dnssec]\nkey_directory = \"{}/keys\"\nzones = [\"example.test\"]\n",
                dir.path().display()
            );
        let server = TestServer::start(&text);
        let primary = server.addr;
        assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
            == Some(vec![A.into(), B.into()])));
        let knot = Secondary::knot(dir.path(), knot_port, primary);
        await_answer(&knot, &[A, B], WAIT);
        let metrics = server.service().transfer().unwrap().metrics();
        // The first serial's NOTIFY (sent before Knot listened) is done with.
        assert!(wait_until(WAIT, || {
            let (sent, acked, failed) = metrics.notifies();
            acked + failed >= 1 && sent >= acked + failed
        }));
        assert!(wait_until(WAIT, || serial(knot.addr) == serial(primary)));
        let first = serial(primary).unwrap();
        let (sent_before, _, _) = metrics.notifies();

        // A doubt: B refuses a probe or two, then answers again.
        b.set(Mode::Refuse);
        assert!(
            wait_until(WAIT, || answer_ttl(primary).is_some_and(|t| t < 60)),
            "B never came into doubt"
        );
        b.set(Mode::Healthy);
        assert_eq!(
            answer(primary, "app.example.test."),
            Some(vec![A.into(), B.into()]),
            "a doubt, not a failover"
        );
        assert!(wait_until(WAIT, || answer_ttl(primary) == Some(60)));
        // Anything the doubt published has been stamped by now; watch a while longer.
        let mut doubt_steps = 0;
        poll_during(Duration::from_millis(500), |_| {
            doubt_steps = serial(primary).map_or(doubt_steps, |s| s.wrapping_sub(first));
        });
        let doubt_notifies = metrics.notifies().0 - sent_before;

        // One failover: B down.
        let seen_before = notifies_seen(&knot);
        b.set(Mode::Refuse);
        assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
            == Some(vec![A.into()])));
        let changed = Instant::now();
        await_answer(&knot, &[A], WAIT);
        let followed = changed.elapsed();
        assert!(wait_until(WAIT, || metrics.notifies().1 >= 2
            && serial(knot.addr) == serial(primary)));
        let failover_steps = serial(primary).unwrap().wrapping_sub(first) - doubt_steps;
        let failover_notifies = metrics.notifies().0 - sent_before - doubt_notifies;
        let knot_seen = notifies_seen(&knot) - seen_before;
        println!(
            "FIGURES {label}: doubt: {doubt_steps} serial steps, {doubt_notifies} NOTIFY; \
             failover: {failover_steps} serial step(s), {failover_notifies} NOTIFY \
             (Knot logged {knot_seen}, serves serial {:?}, followed in {:.1} ms)",
            serial(knot.addr),
            followed.as_secs_f64() * 1000.0
        );
        results.push((
            label,
            (doubt_steps, doubt_notifies),
            (failover_steps, failover_notifies, knot_seen),
        ));
    }
    // Asserted once every key set has printed its figures.
    for (label, doubt, failover) in results {
        assert_eq!(doubt, (0, 0), "{label}: a doubt: (serial steps, NOTIFYs)");
        assert_eq!(
            failover,
            (1, 1, 1),
            "{label}: a failover: (serial steps, NOTIFYs, seen)"
        );
    }
}

/// NOTIFYs leave from the primary's listen address (or `notify_source`), so a
/// secondary whose ACL accepts NOTIFY only from the primary's address takes them:
/// Knot allows NOTIFY from one 127.0.0.x address other than 127.0.0.1 (where an
/// unbound socket's NOTIFY to 127.0.0.1 would come from) and follows a failover at
/// once. Prints the source address Knot logged.
#[test]
fn knot_accepts_notify_only_from_the_primary_address() {
    require!(tool("knotd"));
    // The third case is the control: listening on 127.0.0.1 too, NOTIFYs to Knot
    // (on 127.0.0.1) leave from 127.0.0.1, the route's address, and Knot's ACL for
    // 127.0.0.6 refuses them (what every NOTIFY met before they left from the
    // listen address).
    for (listen, notify_source, acl, accepted) in [
        (&["127.0.0.5:0"][..], None, "127.0.0.5", true),
        (
            &["127.0.0.1:0", "127.0.0.6:0"][..],
            Some("127.0.0.6"),
            "127.0.0.6",
            true,
        ),
        (
            &["127.0.0.1:0", "127.0.0.6:0"][..],
            None,
            "127.0.0.6",
            false,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = Backend::start(ip(A), 0, None);
        let b = Backend::start(ip(B), a.addr.port(), None);
        let knot_port = free_port();
        let notify = [SocketAddr::from(([127, 0, 0, 1], knot_port))];
        let quoted: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
        let mut text = config(a.addr.port(), &notify, "127.0.0.1", dir.path()).replace(
            "listen = [\"127.0.0.1:0\"]",
            &format!("listen = [{}]", quoted.join(", ")),
        );
        if let Some(source) = notify_source {
            text = text.replace(
                "[transfer]\n",
                &format!("[transfer]\nnotify_source = \"{source}\"\n"),
            );
        }
        let server = TestServer::start(&text);
        let primary = server.addr;
        assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
            == Some(vec![A.into(), B.into()])));
        let knot = Secondary::knot_notified_from(dir.path(), knot_port, primary, acl);
        await_answer(&knot, &[A, B], WAIT);
        // A failover: Knot hears of it by NOTIFY alone (its SOA refresh is an hour).
        b.set(Mode::Refuse);
        assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
            == Some(vec![A.into()])));
        let changed = Instant::now();
        if !accepted {
            // Knot answers a NOTIFY its ACL refuses without our key's signature (or
            // not at all): every attempt goes unacknowledged until they run out.
            let metrics = server.service().transfer().unwrap().metrics();
            assert!(
                wait_until(WAIT, || metrics.notifies().2 >= 1),
                "NOTIFY sent, acked, failed: {:?}",
                metrics.notifies()
            );
            let log = knot.log();
            let serves = answer(knot.addr, "app.example.test.");
            println!(
                "FIGURES notify source (control): primary listens on {listen:?}, no \
                 notify_source, NOTIFY from 127.0.0.1; Knot (acl address {acl}) logged {} \
                 incoming NOTIFY, ours (sent, acked, failed) {:?}; Knot still serves \
                 {serves:?} {:.1} s after the change",
                log.lines()
                    .filter(|l| l.contains("notify, incoming"))
                    .count(),
                metrics.notifies(),
                changed.elapsed().as_secs_f64()
            );
            assert_eq!(serves, Some(vec![A.to_owned(), B.to_owned()]));
            continue;
        }
        await_answer(&knot, &[A], WAIT);
        let followed = changed.elapsed();
        let log = knot.log();
        let incoming: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("notify, incoming"))
            .collect();
        let want = format!("remote {acl}@");
        println!(
            "FIGURES notify source: primary listens on {listen:?}, notify_source \
             {notify_source:?}; Knot (acl address {acl}) logged: {:?}; followed the failover \
             in {:.1} ms",
            incoming.last().map(|l| l.trim()),
            followed.as_secs_f64() * 1000.0
        );
        assert!(
            incoming.iter().any(|l| l.contains(&want)),
            "NOTIFY from {acl}:\n{log}"
        );
        assert!(!log.contains("denied"), "no NOTIFY denied:\n{log}");
        let (_, acked, failed) = server.service().transfer().unwrap().metrics().notifies();
        assert!(acked >= 1 && failed == 0, "acked {acked}, failed {failed}");
    }
}

/// `kdig +notcp` with the transfer key: the output and whether it came over UDP.
fn kdig_udp(server: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+notcp", "+time=3", "+retry=0", "-y"])
        .arg(format!("hmac-sha256:xfr-key:{SECRET}"))
        .args(args)
        .output()
        .expect("kdig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `TYPE DATA` of every answer record of kdig's output (`SOA serial` for SOAs).
fn kdig_records(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.get(3) {
                Some(&"SOA") => Some(format!("SOA {}", f.get(6)?)),
                Some(&"TSIG" | &"OPT") | None => None,
                Some(t) => Some(format!("{t} {}", f[4..].join(" "))),
            }
        })
        .collect()
}

/// IXFR over UDP (RFC 1995 §2) against the real binary with `kdig +notcp`: a
/// difference that fits one datagram comes back whole (TSIG-signed, as asked); one
/// that does not (an IXFR from a serial the journal lacks: the whole zone) gets the
/// current SOA alone, which tells the client to use TCP; the current serial gets the
/// SOA. The query carries its SOA in the authority section and is not FORMERR.
#[test]
fn ixfr_over_udp_answers_with_the_difference_or_the_soa_alone() {
    require!(tool("kdig"));
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    let text = config(a.addr.port(), &[], "127.0.0.1", dir.path());
    let (server, _) = crate::support::serve_config(dir.path(), &text, &[]);
    let primary = server.addr;
    assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
        == Some(vec![A.into(), B.into()])));
    let first = serial(primary).unwrap();
    b.set(Mode::Refuse);
    assert!(wait_until(WAIT, || answer(primary, "app.example.test.")
        == Some(vec![A.into()])));
    let second = serial(primary).unwrap();
    assert_eq!(second, first.wrapping_add(1));

    // Fits: the difference, over UDP, signed.
    let fits = kdig_udp(primary, &[&format!("IXFR={first}"), ZONE]);
    println!("FIGURES kdig +notcp IXFR={first} (fits):\n{fits}");
    assert!(fits.contains("(UDP)"), "{fits}");
    assert!(fits.contains("TSIG"), "signed: {fits}");
    assert_eq!(
        kdig_records(&fits),
        vec![
            format!("SOA {second}"),
            format!("SOA {first}"),
            format!("A {B}"),
            format!("SOA {second}"),
            format!("SOA {second}"),
        ],
        "{fits}"
    );
    // Too large (the journal does not reach that far back: the whole zone, some
    // 3 kB, over 512 bytes without EDNS): the current SOA alone.
    let older = first.wrapping_sub(10);
    let large = kdig_udp(primary, &[&format!("IXFR={older}"), ZONE]);
    println!("FIGURES kdig +notcp IXFR={older} (too large):\n{large}");
    assert!(large.contains("(UDP)"), "{large}");
    assert_eq!(
        kdig_records(&large),
        vec![format!("SOA {second}")],
        "{large}"
    );
    // With EDNS 1232 it still does not fit; the same SOA.
    let edns = kdig_udp(
        primary,
        &["+edns", "+bufsize=1232", &format!("IXFR={older}"), ZONE],
    );
    assert_eq!(kdig_records(&edns), vec![format!("SOA {second}")], "{edns}");
    // Up to date: the SOA.
    let current = kdig_udp(primary, &[&format!("IXFR={second}"), ZONE]);
    assert_eq!(
        kdig_records(&current),
        vec![format!("SOA {second}")],
        "{current}"
    );
    // Over TCP the same old serial gets the whole zone.
    let tcp = transfer_lines(primary, RecordType::IXFR, Some(older));
    assert!(tcp.len() > 20, "{tcp:?}");
    drop(server);
    drop(a);
}
