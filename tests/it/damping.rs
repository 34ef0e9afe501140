//! Flap damping over real sockets: a backend flapping faster than the probes can
//! follow changes the answer a few times and then stays out; once it stops flapping
//! it is back within `max_suppress`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::support::TestServer;
use crate::support::backend::{Backend, Mode};
use crate::support::dns::sorted_addresses;

const A: &str = crate::support::BACKEND_A;
const B: &str = crate::support::BACKEND_B;

fn config(port: u16, damping: &str) -> String {
    crate::support::two_backend_config(
        port,
        &format!(
            r#"interval = "1s"
timeout = "250ms"
rise = 1
fall = 1
{damping}"#
        ),
    )
}

/// Flaps B (up `period`, down `period`) for `duration` while polling the answer every
/// 20 ms; returns the number of answer changes and when the flapping stopped.
fn flap(
    server: &TestServer,
    b: &Backend,
    period: Duration,
    duration: Duration,
) -> (usize, Instant) {
    let answer = || sorted_addresses(server.addr, "app.example.test.");
    let start = Instant::now();
    let mut last = answer();
    let mut changes = 0;
    let mut down = false;
    let mut next_flip = start + period;
    while start.elapsed() < duration {
        if Instant::now() >= next_flip {
            down = !down;
            b.set(if down { Mode::Refuse } else { Mode::Healthy });
            next_flip += period;
        }
        let now = answer();
        if now != last {
            changes += 1;
            last = now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    b.set(Mode::Healthy);
    (changes, Instant::now())
}

fn backends() -> (Backend, Backend) {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    let a = Backend::start(ip(A), 0, None);
    let b = Backend::start(ip(B), a.addr.port(), None);
    (a, b)
}

#[test]
fn a_flapping_backend_changes_the_answer_rarely_and_is_back_after_it_stops() {
    let (a, b) = backends();
    let server = TestServer::start(&config(a.addr.port(), ""));
    crate::support::dns::expect_addresses(
        server.addr,
        "app.example.test.",
        &[A, B],
        Duration::from_secs(5),
    );
    let (changes, stopped) = flap(
        &server,
        &b,
        Duration::from_millis(300),
        Duration::from_secs(20),
    );
    let back = crate::support::wait_until(Duration::from_secs(40), || {
        sorted_addresses(server.addr, "app.example.test.") == [A, B]
    });
    let back_after = stopped.elapsed();
    eprintln!(
        "FIGURES flap damping=on answer_changes={changes} back_after_ms={}",
        back_after.as_millis()
    );
    assert!(
        changes <= 10,
        "{changes} answer changes in 20 s (target ≤ 1 per 2 s)"
    );
    assert!(back, "B never came back");
    assert!(
        back_after <= Duration::from_secs(31),
        "back after {back_after:?}"
    );
    let status = server.service().status();
    assert!(
        status.endpoints[1]
            .damping
            .as_ref()
            .is_some_and(|d| d.penalty > 0.0),
        "the penalty is shown"
    );
}

#[test]
fn without_damping_the_answer_follows_every_flap_and_one_outage_is_never_delayed() {
    let (a, b) = backends();
    // One outage and recovery with damping on (the default): not delayed.
    let damped = TestServer::start(&config(a.addr.port(), ""));
    let answer = |server: &TestServer| sorted_addresses(server.addr, "app.example.test.");
    crate::support::dns::expect_addresses(
        damped.addr,
        "app.example.test.",
        &[A, B],
        Duration::from_secs(5),
    );
    b.set(Mode::Refuse);
    crate::support::dns::expect_addresses(
        damped.addr,
        "app.example.test.",
        &[A],
        Duration::from_secs(5),
    );
    b.set(Mode::Healthy);
    let healed = Instant::now();
    crate::support::dns::expect_addresses(
        damped.addr,
        "app.example.test.",
        &[A, B],
        Duration::from_secs(5),
    );
    assert!(
        healed.elapsed() < Duration::from_millis(2_500),
        "one recovery is not delayed"
    );
    assert!(answer(&damped).len() == 2);
    drop(damped);
    // Damping off: the answer follows the flaps.
    let plain = TestServer::start(&config(
        a.addr.port(),
        "[checks.web.damping]\nenabled = false",
    ));
    crate::support::dns::expect_addresses(
        plain.addr,
        "app.example.test.",
        &[A, B],
        Duration::from_secs(5),
    );
    let (changes, _) = flap(
        &plain,
        &b,
        Duration::from_millis(300),
        Duration::from_secs(12),
    );
    eprintln!("FIGURES flap damping=off answer_changes={changes} duration_s=12");
    assert!(changes >= 3, "only {changes} changes without damping");
}
