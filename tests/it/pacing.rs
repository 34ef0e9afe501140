//! Fast confirm over real sockets: once a probe fails, the next ones come every
//! `fast_interval`, so `fall = 3` at a 1 s interval detects a crash in about one
//! interval, not three.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::TestServer;
use crate::support::backend::{Backend, Mode};
use crate::support::dns::{expect_addresses, sorted_addresses};

const A: &str = crate::support::BACKEND_A;
const B: &str = crate::support::BACKEND_B;

fn config(port: u16, pacing: &str) -> String {
    crate::support::two_backend_config(
        port,
        &format!(
            r#"interval = "1s"
timeout = "150ms"
rise = 2
fall = 3
{pacing}"#
        ),
    )
}

/// Time from breaking B to the answer without it, and from mending it to B back.
fn detection(pacing: &str) -> (Duration, Duration) {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    let server = TestServer::start(&config(a.addr.port(), pacing));
    let name = "app.example.test.";
    expect_addresses(server.addr, name, &[A, B], Duration::from_secs(5));
    let time_until = |want: &[&str]| {
        let start = Instant::now();
        while sorted_addresses(server.addr, name) != want {
            assert!(start.elapsed() < Duration::from_secs(10), "never {want:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        start.elapsed()
    };
    b.set(Mode::Refuse);
    let down = time_until(&[A]);
    b.set(Mode::Healthy);
    let up = time_until(&[A, B]);
    (down, up)
}

#[test]
fn fast_confirm_detects_a_crash_in_about_one_interval() {
    // Default fast_interval: interval / 5 = 200 ms.
    let (fast_down, fast_up) = detection("");
    // Fast confirm off: every probe a full interval apart.
    let (slow_down, slow_up) = detection("fast_interval = \"1s\"");
    eprintln!(
        "FIGURES fast_confirm fall=3 rise=2 interval_ms=1000 down_ms={} up_ms={} without: down_ms={} up_ms={}",
        fast_down.as_millis(),
        fast_up.as_millis(),
        slow_down.as_millis(),
        slow_up.as_millis()
    );
    assert!(fast_down < Duration::from_millis(1_800), "{fast_down:?}");
    assert!(slow_down >= Duration::from_millis(1_600), "{slow_down:?}");
    assert!(
        fast_up < slow_up + Duration::from_millis(100),
        "{fast_up:?} vs {slow_up:?}"
    );
}

#[test]
fn the_ttl_shrinks_to_the_earliest_possible_change() {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    let text = config(a.addr.port(), "hold = \"20s\"\ninterval = \"200ms\"")
        .replace("interval = \"1s\"\n", "")
        .replace("ttl = 5", "ttl = 60\nmin_ttl = 2");
    let server = TestServer::start(&text);
    let name = "app.example.test.";
    let ttl = || {
        let reply = crate::support::dns::ask(server.addr, name, hickory_proto::rr::RecordType::A);
        reply.answers[0].ttl
    };
    expect_addresses(server.addr, name, &[A, B], Duration::from_secs(5));
    assert_eq!(ttl(), 60, "nothing in doubt: the record's TTL");
    b.set(Mode::Refuse);
    expect_addresses(server.addr, name, &[A], Duration::from_secs(5));
    b.set(Mode::Healthy);
    // B passes its probes again but is held down for 20 s: the answer without it may
    // change within 20 s, so it is cached no longer than that.
    let held = crate::support::wait_until(Duration::from_secs(5), || {
        let t = ttl();
        (2..=20).contains(&t)
    });
    assert!(held, "TTL {} while a failback is pending", ttl());
    let status = server.service().status();
    assert!(
        status.records[0].answers[0].ttl <= 20,
        "status shows the shortened TTL"
    );
    assert_eq!(sorted_addresses(server.addr, name), [A]);
}

#[test]
fn a_failover_pool_taking_over_again_ramps_up() {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let _b = Backend::start(ip(B), a.addr.port(), None);
    let text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]
[checks.web]
type = "http"
port = {}
interval = "100ms"
timeout = "80ms"
slow_start = "4s"
[pools.primary]
check = "web"
endpoints = [{{ address = "{A}" }}]
[pools.secondary]
check = "web"
endpoints = [{{ address = "{B}" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 30
policy = "failover"
pools = ["primary", "secondary"]
"#,
        a.addr.port()
    );
    let server = TestServer::start(&text);
    let name = "app.example.test.";
    expect_addresses(server.addr, name, &[A], Duration::from_secs(5));
    a.set(Mode::Refuse);
    expect_addresses(server.addr, name, &[B], Duration::from_secs(5));
    a.set(Mode::Healthy);
    // The first answer from the primary again: its share is 10 % for 400 ms.
    assert!(crate::support::wait_until(Duration::from_secs(5), || {
        sorted_addresses(server.addr, name) == [A]
    }));
    let back = Instant::now();
    let mut early = (0, 0);
    while back.elapsed() < Duration::from_millis(300) {
        let answer = sorted_addresses(server.addr, name);
        early.0 += usize::from(answer == [A]);
        early.1 += 1;
    }
    let reply = crate::support::dns::ask(server.addr, name, hickory_proto::rr::RecordType::A);
    let ramp_ttl = reply.answers[0].ttl;
    // After the ramp every answer is the primary's, with the full TTL.
    expect_addresses(server.addr, name, &[A], Duration::from_secs(6));
    assert!(crate::support::wait_until(Duration::from_secs(6), || {
        crate::support::dns::ask(server.addr, name, hickory_proto::rr::RecordType::A).answers[0].ttl
            == 30
    }));
    let late = (0..200)
        .filter(|_| sorted_addresses(server.addr, name) == [A])
        .count();
    eprintln!(
        "FIGURES slow_start early_primary={}/{} ramp_ttl={ramp_ttl} late_primary={late}/200",
        early.0, early.1
    );
    assert!(
        early.1 >= 20 && early.0 * 2 < early.1,
        "{early:?}: the primary ramps from 10 %"
    );
    assert!(ramp_ttl <= 1, "TTL {ramp_ttl} during a ramp step of 400 ms");
    assert_eq!(late, 200);
}
