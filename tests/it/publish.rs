//! Publish time from a health change to the snapshot ready to swap (issue 22: p99 ≤ 5 ms):
//! the plane's publish — `with_health`, then the transfer stamp when a secondary is
//! configured — over many health changes cycling through a failover and a doubt (a
//! down, a up, a in doubt, doubt cleared). Ignored: a figure, not a check.
//!
//! Run: `cargo test --release --test it -- --ignored publish_times --nocapture`
//! (`CHANGES=N`, default 1000; `CASES=a,b,c`, default all; `ALGORITHMS=ed25519,ecdsa`,
//! default ed25519).

use std::sync::Arc;

use failoverd::testing::dns::Snapshot;
use failoverd::testing::dns::xfr::TransferState;
use failoverd::testing::dnssec::Signing;
use failoverd::testing::dnssec::keys::{Algorithm, Key, Role, Timing, unix_now};
use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::model::HealthState;

/// A zone of `n` A records plus the usual apex data, origin `bench.test.`.
fn zone_text(n: usize) -> String {
    let mut text = String::with_capacity(n * 32);
    text.push_str(
        "$ORIGIN bench.test.\n$TTL 300\n\
         @ IN SOA ns1.bench.test. hostmaster.bench.test. 2024010101 3600 900 604800 300\n\
         @ IN NS ns1.bench.test.\n@ IN NS ns2.bench.test.\n\
         ns1 IN A 127.0.0.53\nns2 IN A 127.0.0.54\n",
    );
    for i in 1..=n.saturating_sub(4) {
        text.push_str(&format!(
            "h{i} IN A 10.{}.{}.{}\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    text
}

/// One case: `records` static records, `dynamic` failover names over a pool of two,
/// signed with `algorithm` when given, a secondary when `transfers`.
struct Case {
    label: &'static str,
    records: usize,
    dynamic: usize,
    algorithm: Option<Algorithm>,
    transfers: bool,
}

fn run(case: &Case, changes: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.test.zone"), zone_text(case.records)).unwrap();
    let mut text = format!(
        "version = 1\n[server]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndirectory = \"{}\"\n\
         files = [\"bench.test.zone\"]\n[pools.fo]\nendpoints = [{{ address = \"127.0.0.2\", \
         name = \"a\" }}, {{ address = \"127.0.0.3\", name = \"b\" }}]\n",
        dir.path().display()
    );
    for i in 0..case.dynamic {
        text.push_str(&format!(
            "[[records]]\nname = \"d{i}.fo.bench.test\"\ntype = \"A\"\nttl = 60\n\
             policy = \"failover\"\npools = [\"fo\"]\nall_down = \"nodata\"\n"
        ));
    }
    if case.transfers {
        text.push_str(
            "[transfer]\n[[transfer.secondaries]]\nname = \"s\"\nallow = [\"127.0.0.1\"]\n",
        );
    }
    if let Some(algorithm) = case.algorithm {
        Key::generate("bench.test.", Role::Csk, algorithm, Timing::from(0))
            .unwrap()
            .save(&dir.path().join("keys"))
            .unwrap();
        text.push_str(&format!(
            "[dnssec]\nkey_directory = \"{}/keys\"\nzones = [\"bench.test\"]\n",
            dir.path().display()
        ));
    }
    let started = std::time::Instant::now();
    let source = failoverd::testing::config::ConfigSource::from_text(text, dir.path());
    let loaded = failoverd::testing::service::load(source).unwrap_or_else(|d| panic!("{d}"));
    let config = loaded.config.clone();
    let up = HealthSnapshot::from_config(&config);
    let signing = loaded.keys.clone().map(|keys| Signing {
        keys,
        now: unix_now(),
    });
    let transfer = case.transfers.then(|| TransferState::new(&config.transfer));
    let publish = |snapshot: Snapshot| match &transfer {
        Some(state) => state.stamp(snapshot),
        None => snapshot,
    };
    let mut current = publish(
        Snapshot::build_signed(
            config.clone(),
            loaded.zones,
            up.clone(),
            1,
            signing.as_ref(),
        )
        .unwrap(),
    );
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut endpoints = up.endpoints().to_vec();
    endpoints[0].state = HealthState::Down;
    let down = HealthSnapshot::from_health(endpoints);
    let doubt = up.clone().with_doubt(vec![Some(2), None]);
    let states = [down, up.clone(), doubt, up];
    let mut times = Vec::with_capacity(changes);
    for i in 0..changes {
        let health = states[i % states.len()].clone();
        let started = std::time::Instant::now();
        let next = publish(current.with_health(health, i as u64 + 2));
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        // Retired as the plane retires it: dropped outside the timed publish.
        drop(Arc::new(std::mem::replace(&mut current, next)));
    }
    let serial = transfer
        .as_ref()
        .and_then(|t| t.serial("bench.test."))
        .map_or_else(|| "-".to_owned(), |s| s.to_string());
    let first = times.first().copied().unwrap_or_default();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "| {} | {} | {} | {} | {} | {changes} | {:.0} | {first:.2} | {:.2} | {:.2} | {:.2} | {serial} |",
        case.label,
        case.records,
        case.dynamic,
        case.algorithm
            .map_or_else(|| "-".to_owned(), |a| format!("{a:?}")),
        if case.transfers { "yes" } else { "no" },
        start_ms,
        at(0.5),
        at(0.99),
        times[times.len() - 1],
    );
}

#[test]
#[ignore]
fn publish_times() {
    let changes: usize = std::env::var("CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cases = std::env::var("CASES").unwrap_or_else(|_| "a,b,c".to_owned());
    let algorithms: Vec<Algorithm> = std::env::var("ALGORITHMS")
        .unwrap_or_else(|_| "ed25519".to_owned())
        .split(',')
        .map(|a| match a {
            "ecdsa" => Algorithm::EcdsaP256,
            _ => Algorithm::Ed25519,
        })
        .collect();
    println!(
        "| case | static records | signed dynamic names | keys | secondary | changes | build ms | first change ms | p50 ms | p99 ms | max ms | serial after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for case in cases.split(',') {
        match case {
            "a" => run(
                &Case {
                    label: "a",
                    records: 200_000,
                    dynamic: 1,
                    algorithm: None,
                    transfers: true,
                },
                changes,
            ),
            "b" | "c" => {
                for &algorithm in &algorithms {
                    run(
                        &Case {
                            label: if case == "b" { "b" } else { "c" },
                            records: if case == "b" { 10 } else { 200_000 },
                            dynamic: 10_000,
                            algorithm: Some(algorithm),
                            transfers: case == "c",
                        },
                        changes,
                    );
                }
            }
            other => panic!("unknown case {other} (a, b or c)"),
        }
    }
}
