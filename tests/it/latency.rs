//! Latency steering measured through real DNS: three regions with a vantage point
//! each (the server in eu, probe agents in us and ap, each probing from its own
//! source address), one pool per region whose backend every vantage point reaches
//! through a delaying TCP proxy the test controls (a delay per source address, so
//! per path), and clients with ECS subnets of each region.
//!
//! - Each region's clients get the pool with the lowest RTT from that region.
//! - When the proxy raises eu's path to web-eu past `min_gain`, eu's clients move to
//!   the next fastest pool within `hold` + one probe interval + the EWMA's time to
//!   cross the margin (measured and printed).
//! - With ±30 % jitter on every path for 60 s (eu's two best paths 10 ms apart), the
//!   answer changes per region stay ≤ 60 / `hold` (printed per region).
//!
//! No network namespaces: the per-path delay comes from the vantage points' source
//! addresses on loopback, which needs no root and no netem.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use failoverd::service::StartOptions;
use hickory_proto::rr::RecordType;

use crate::support::backend::Backend;
use crate::support::delay::{DelayProxy, PathDelay};
use crate::support::dns::{addresses, query, udp, with_edns};
use crate::support::{TestAgent, TestServer, http, wait_until};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// Vantage point per region and its probes' source address.
const VANTAGES: [(&str, &str); 3] = [
    ("eu-1", "127.0.0.41"),
    ("us-1", "127.0.0.42"),
    ("ap-1", "127.0.0.43"),
];
/// Pool per region: the address its endpoint is reached at (the proxy) and its
/// backend's.
const POOLS: [(&str, &str, &str); 3] = [
    ("web-eu", "127.0.0.51", "127.0.0.61"),
    ("web-us", "127.0.0.52", "127.0.0.62"),
    ("web-ap", "127.0.0.53", "127.0.0.63"),
];
/// Path delays (ms): `BASE[vantage][pool]`.
const BASE: [[u64; 3]; 3] = [[20, 120, 200], [120, 20, 150], [200, 150, 20]];
const INTERVAL: Duration = Duration::from_millis(500);
const RTT_WINDOW: Duration = Duration::from_millis(400);
const HOLD: Duration = Duration::from_secs(2);

fn config(port: u16, servers: &str) -> String {
    let mut text = format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "../zones"
files = ["example.test.zone"]
[regions.eu]
networks = ["10.1.0.0/16"]
[regions.us]
networks = ["10.2.0.0/16"]
[regions.ap]
networks = ["10.3.0.0/16"]
[geo]
default_region = "eu"
[checks.web]
type = "http"
port = {port}
interval = "{interval}ms"
timeout = "450ms"
rise = 1
fall = 2
[[records]]
name = "near.example.test"
type = "A"
ttl = 5
policy = "latency"
pools = ["web-eu", "web-us", "web-ap"]
min_gain = "15ms"
min_gain_percent = 20
hold = "{hold}s"
[health]
down_votes = 1
staleness = "3s"
push_interval = "100ms"
rtt_window = "{window}ms"
servers = [{servers}]
[admin]
listen = "127.0.0.1:0"
"#,
        interval = INTERVAL.as_millis(),
        window = RTT_WINDOW.as_millis(),
        hold = HOLD.as_secs(),
    );
    for (pool, address, _) in POOLS {
        text.push_str(&format!(
            "[pools.{pool}]\ncheck = \"web\"\nendpoints = [{{ address = \"{address}\", name = \"a\" }}]\n"
        ));
    }
    for (i, (name, source)) in VANTAGES.iter().enumerate() {
        text.push_str(&format!(
            "[vantages.{name}]\nregion = \"{}\"\nsecret = \"secret-of-{name}-0123456789\"\nsource_address = \"{source}\"\n",
            REGIONS[i]
        ));
    }
    text
}

struct Steering {
    server: TestServer,
    admin: SocketAddr,
    _agents: Vec<TestAgent>,
    proxies: Vec<DelayProxy>,
    _backends: Vec<Backend>,
}

impl Steering {
    fn start() -> Self {
        let first = Backend::start(POOLS[0].2.parse().unwrap(), 0, None);
        let port = first.addr.port();
        let mut backends = vec![first];
        for (_, _, backend) in &POOLS[1..] {
            backends.push(Backend::start(backend.parse().unwrap(), port, None));
        }
        let proxies: Vec<DelayProxy> = POOLS
            .iter()
            .map(|(_, address, backend)| {
                DelayProxy::start(
                    SocketAddr::new(address.parse().unwrap(), port),
                    SocketAddr::new(backend.parse().unwrap(), port),
                )
            })
            .collect();
        let steering = |proxies: &[DelayProxy]| {
            for (v, (_, source)) in VANTAGES.iter().enumerate() {
                for (p, proxy) in proxies.iter().enumerate() {
                    proxy.set(
                        source.parse().unwrap(),
                        PathDelay {
                            base_ms: BASE[v][p],
                            jitter: 0.0,
                        },
                    );
                }
            }
        };
        steering(&proxies);
        let options = StartOptions {
            vantage: Some(VANTAGES[0].0.into()),
            ..StartOptions::default()
        };
        let server = TestServer::start_with(&config(port, ""), options);
        let admin = server.service().admin_address().expect("admin API");
        let agent_config = config(port, &format!("\"http://{admin}\""));
        let agents = VANTAGES[1..]
            .iter()
            .map(|(name, _)| TestAgent::start(&agent_config, name))
            .collect();
        Self {
            server,
            admin,
            _agents: agents,
            proxies,
            _backends: backends,
        }
    }

    /// The pool answering a client of region `r` (an ECS /24 inside it).
    fn answer(&self, r: usize, client: u8) -> usize {
        let subnet = IpAddr::V4(Ipv4Addr::new(10, r as u8 + 1, client, 0));
        let reply = udp(
            self.server.addr,
            &with_edns(
                query("near.example.test.", RecordType::A),
                1232,
                Some((subnet, 24)),
            ),
        );
        let answered = addresses(&reply);
        let first = answered.first().expect("an answer").clone();
        POOLS
            .iter()
            .position(|(_, address, _)| *address == first)
            .unwrap_or_else(|| panic!("{first} is no pool's"))
    }

    /// `/v1/explain`'s latency line for a client of region `r`.
    fn explain(&self, r: usize) -> String {
        let (status, body) = http(
            self.admin,
            "GET",
            &format!("/v1/explain?name=near.example.test&ecs=10.{}.0.0/24", r + 1),
            &[],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["records"][0]["latency"].as_str().unwrap_or("").to_owned()
    }

    /// Every vantage point's RTT to every pool is known to the server.
    fn measured(&self) -> bool {
        let status = self.server.service().status();
        VANTAGES.iter().all(|(v, _)| {
            POOLS.iter().all(|(p, _, _)| {
                status
                    .rtts
                    .iter()
                    .any(|r| r.vantage == *v && r.endpoint == format!("{p}/a"))
            })
        })
    }

    fn table(&self) -> String {
        let status = self.server.service().status();
        let mut lines = vec![format!(
            "{:<6} {:>9} {:>9} {:>9}",
            "from", "web-eu", "web-us", "web-ap"
        )];
        for (v, _) in VANTAGES {
            let cell = |p: &str| {
                status
                    .rtts
                    .iter()
                    .find(|r| r.vantage == v && r.endpoint == format!("{p}/a"))
                    .map_or("-".to_owned(), |r| format!("{:.1} ms", r.rtt_ms))
            };
            lines.push(format!(
                "{v:<6} {:>9} {:>9} {:>9}",
                cell("web-eu"),
                cell("web-us"),
                cell("web-ap")
            ));
        }
        lines.join("\n")
    }
}

#[test]
fn each_region_gets_its_fastest_pool_and_moves_within_hold_when_its_path_slows() {
    let s = Steering::start();
    assert!(
        wait_until(Duration::from_secs(20), || s.measured()),
        "the server never heard every vantage point's RTTs:\n{}",
        s.table()
    );
    for r in 0..3 {
        assert!(
            wait_until(Duration::from_secs(10), || s.answer(r, 7) == r),
            "{} clients never got {}:\n{}\n{}",
            REGIONS[r],
            POOLS[r].0,
            s.table(),
            s.explain(r)
        );
    }
    println!("RTTs as the server holds them:\n{}", s.table());
    for r in 0..3 {
        let line = s.explain(r);
        println!("explain {}: {line}", REGIONS[r]);
        assert!(
            line.starts_with(&format!("latency: from {}: ", REGIONS[r]))
                && line.contains(&format!("→ {}", POOLS[r].0)),
            "{line}"
        );
    }
    // eu's path to web-eu slows from 20 to 300 ms: web-us (120 ms) is better by far
    // more than 15 ms and 20 %.
    let slowed = Instant::now();
    s.proxies[0].set(
        VANTAGES[0].1.parse().unwrap(),
        PathDelay {
            base_ms: 300,
            jitter: 0.0,
        },
    );
    // hold + one probe interval, plus the slow probe's own 300 ms and the EWMA's
    // time to cross the margin (at most its window here).
    let bound = HOLD + INTERVAL + Duration::from_millis(300) + RTT_WINDOW;
    assert!(
        wait_until(Duration::from_secs(20), || s.answer(0, 9) == 1),
        "eu clients never moved to web-us:\n{}\n{}",
        s.table(),
        s.explain(0)
    );
    let moved = slowed.elapsed();
    println!(
        "eu clients moved web-eu → web-us {:.2} s after the path slowed (hold {} s + probe interval {} ms; the slow probe itself takes 300 ms and the EWMA ({} ms) needs about half its window to cross the margin)",
        moved.as_secs_f64(),
        HOLD.as_secs(),
        INTERVAL.as_millis(),
        RTT_WINDOW.as_millis()
    );
    println!("explain eu: {}", s.explain(0));
    assert!(moved >= HOLD, "moved before the hold: {moved:?}");
    assert!(moved <= bound, "moved after {moved:?}, more than {bound:?}");
    // The other regions did not move.
    assert_eq!(s.answer(1, 9), 1);
    assert_eq!(s.answer(2, 9), 2);
    // failoverd_endpoint_rtt_seconds carries every path.
    let (_, metrics) = http(s.admin, "GET", "/metrics", &[], b"");
    let rtt_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("failoverd_endpoint_rtt_seconds{"))
        .collect();
    assert_eq!(rtt_lines.len(), 9, "{rtt_lines:#?}");
    assert!(
        rtt_lines.iter().any(|l| l.starts_with(
            "failoverd_endpoint_rtt_seconds{vantage=\"us-1\",pool=\"web-us\",endpoint=\"a\"} 0.0"
        )),
        "{rtt_lines:#?}"
    );
}

#[test]
fn jitter_on_every_path_moves_each_region_at_most_once_per_hold() {
    let s = Steering::start();
    assert!(wait_until(Duration::from_secs(20), || s.measured()));
    // Settled first: every region on its own pool (a region placed before its
    // vantage point's RTTs arrived moves once they do, after the hold).
    for r in 0..3 {
        assert!(wait_until(Duration::from_secs(10), || s.answer(r, 3) == r));
    }
    // eu's two best paths 10 ms apart (40 vs 50 ms), ±30 % jitter on every path.
    let mut base = BASE;
    base[0][0] = 40;
    base[0][1] = 50;
    for (v, (_, source)) in VANTAGES.iter().enumerate() {
        for (p, proxy) in s.proxies.iter().enumerate() {
            proxy.set(
                source.parse().unwrap(),
                PathDelay {
                    base_ms: base[v][p],
                    jitter: 0.3,
                },
            );
        }
    }
    let period = Duration::from_secs(60);
    let started = Instant::now();
    let mut last = [s.answer(0, 3), s.answer(1, 3), s.answer(2, 3)];
    let mut changes = [0usize; 3];
    let mut polls = 0;
    while started.elapsed() < period {
        for (r, last) in last.iter_mut().enumerate() {
            let now = s.answer(r, 3);
            if now != *last {
                changes[r] += 1;
                *last = now;
            }
        }
        polls += 1;
    }
    let limit = (period.as_secs() / HOLD.as_secs()) as usize;
    println!(
        "answer changes per region over {} s of ±30 % jitter ({polls} polls per region; limit 60 / hold = {limit}):",
        period.as_secs()
    );
    for r in 0..3 {
        println!("  {}: {}", REGIONS[r], changes[r]);
    }
    println!("RTTs at the end:\n{}", s.table());
    assert!(polls > 1000, "{polls} polls");
    for r in 0..3 {
        assert!(
            changes[r] <= limit,
            "{}: {} changes",
            REGIONS[r],
            changes[r]
        );
    }
}
