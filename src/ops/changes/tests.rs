//! Narration diffs on real snapshots of the integration config, and the isolation
//! warning's edges over time.

use std::path::PathBuf;

use super::*;
use crate::config::ConfigSource;
use crate::health::EndpointHealth;

fn config() -> Arc<Config> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs");
    let text = std::fs::read_to_string(dir.join("integration.toml")).unwrap();
    let (config, diagnostics) = Config::load(ConfigSource::from_text(text, dir)).unwrap();
    assert!(!diagnostics.has_errors(), "{diagnostics}");
    Arc::new(config)
}

fn health(config: &Config, down: &[&str]) -> HealthSnapshot {
    HealthSnapshot::from_states((0..config.endpoints.len()).map(|i| {
        let label = config.endpoint_label(EndpointIndex(i as u32));
        if down.contains(&label.as_str()) {
            HealthState::Down
        } else {
            HealthState::Up
        }
    }))
}

fn snapshot(config: &Arc<Config>, down: &[&str]) -> Snapshot {
    let (zones, _) = crate::zone::load(config).unwrap();
    Snapshot::build(config.clone(), zones, health(config, down), 1)
}

#[test]
fn a_pool_going_down_tells_the_pool_and_each_answer_that_moved() {
    let config = config();
    let before = snapshot(&config, &[]);
    let after = before.with_health(health(&config, &["eu/eu-1", "eu/eu-2"]), 2);
    let changes = answer_changes(&config, &before, &after);
    let eu = config.pool_by_name("eu").unwrap();
    assert!(changes.contains(&AnswerChange::Pool {
        pool: eu,
        was_up: true,
        up: false,
        usable_before: 2,
        usable_after: 0,
    }));
    let app = changes
        .iter()
        .find_map(|c| match c {
            AnswerChange::Record {
                record: 0,
                before,
                after,
                ..
            } => Some((before.clone(), after.clone())),
            _ => None,
        })
        .expect("app A changed");
    assert_eq!(app.0, ["192.0.2.11", "192.0.2.12"]);
    assert!(
        app.1.iter().all(|t| t.starts_with("198.51.100.")),
        "{app:?}"
    );
    // Records not over eu (weighted over us, AAAA over v6) are not told.
    assert!(!changes.iter().any(|c| matches!(
        c,
        AnswerChange::Record { record, .. } if *record == 1 || *record == 2
    )));
}

#[test]
fn one_endpoint_less_is_a_capacity_change_and_the_same_health_tells_nothing() {
    let config = config();
    let before = snapshot(&config, &[]);
    let after = before.with_health(health(&config, &["eu/eu-2"]), 2);
    let changes = answer_changes(&config, &before, &after);
    assert!(changes.contains(&AnswerChange::PoolCapacity {
        pool: config.pool_by_name("eu").unwrap(),
        up: true,
        usable_before: 2,
        usable_after: 1,
    }));
    let same = before.with_health(health(&config, &[]), 2);
    assert_eq!(answer_changes(&config, &before, &same), []);
}

#[test]
fn endpoint_changes_are_state_changes_only() {
    let up = EndpointHealth {
        state: HealthState::Up,
        source: HealthSource::Assumed,
    };
    let before = HealthSnapshot::from_health(vec![up, up]);
    let after = HealthSnapshot::from_health(vec![
        EndpointHealth {
            source: HealthSource::Observed,
            ..up
        },
        EndpointHealth {
            state: HealthState::Down,
            source: HealthSource::Observed,
        },
    ]);
    assert_eq!(
        endpoint_changes(&before, &after),
        [EndpointChange {
            endpoint: EndpointIndex(1),
            old: HealthState::Up,
            new: HealthState::Down,
            source: HealthSource::Observed,
        }]
    );
}

fn view(fresh: &[&str], partitioned: &[&str]) -> VantageView {
    VantageView {
        fresh: fresh.iter().map(|s| s.to_string()).collect(),
        partitioned: partitioned.iter().map(|s| s.to_string()).collect(),
        isolated: false,
    }
}

#[test]
fn vantage_changes_tell_partitions_recoveries_and_staleness() {
    let first = view(&["a", "b", "c"], &["c"]);
    assert_eq!(
        vantage_changes(None, &first),
        [VantageChange::Partitioned("c".into())]
    );
    let next = view(&["a", "c"], &[]);
    assert_eq!(
        vantage_changes(Some(&first), &next),
        [
            VantageChange::Recovered("c".into()),
            VantageChange::Stale("b".into())
        ]
    );
    assert_eq!(vantage_changes(Some(&next), &next), []);
}

#[test]
fn damping_changes_split_began_and_ended() {
    let before: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    let now: BTreeSet<String> = ["b".to_owned(), "c".to_owned()].into();
    let (began, ended) = damping_changes(&before, &now);
    assert_eq!(began, ["c"]);
    assert_eq!(ended, ["a"]);
}

#[test]
fn isolation_waits_for_staleness_at_start_warns_once_and_says_when_it_ends() {
    let staleness = Duration::from_secs(3);
    let s = Duration::from_secs;
    let mut notice = IsolationNotice::default();
    // A cold start: isolated until the first reports, not an incident.
    assert_eq!(notice.observe(true, s(0), staleness), None);
    assert_eq!(notice.observe(true, s(2), staleness), None);
    // Still isolated once the staleness window passed: warn, once.
    assert_eq!(
        notice.observe(true, s(3), staleness),
        Some(IsolationEdge::Began)
    );
    assert_eq!(notice.observe(true, s(4), staleness), None);
    assert_eq!(
        notice.observe(false, s(5), staleness),
        Some(IsolationEdge::Ended)
    );
    assert_eq!(notice.observe(false, s(6), staleness), None);
}

#[test]
fn after_a_quorum_was_heard_isolation_warns_at_once() {
    let staleness = Duration::from_secs(3);
    let mut notice = IsolationNotice::default();
    assert_eq!(notice.observe(false, Duration::ZERO, staleness), None);
    assert_eq!(
        notice.observe(true, Duration::from_secs(1), staleness),
        Some(IsolationEdge::Began)
    );
}
