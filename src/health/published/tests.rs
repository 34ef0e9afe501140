//! The one composition: overrides, then primaries over the overridden health; and
//! the decided health of another process by endpoint label.

use super::*;
use crate::config::ConfigSource;
use crate::model::PoolIndex;

/// Endpoints: 0 eu/a, 1 eu/b (config-forced down), 2 us/a; records 0 www A failover
/// over eu, us.
fn config() -> Config {
    let text = r#"
version = 1
[pools.eu]
endpoints = [{ address = "192.0.2.1", name = "a" }, { address = "192.0.2.2", name = "b", force = "down" }]
[pools.us]
endpoints = [{ address = "198.51.100.1", name = "a" }]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["eu", "us"]
"#;
    match Config::load(ConfigSource::from_text(text.to_owned(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}"),
    }
}

fn observed(state: HealthState) -> EndpointHealth {
    EndpointHealth {
        state,
        source: HealthSource::Observed,
    }
}

#[test]
fn no_overrides_and_no_primaries_publish_the_decision_unchanged() {
    let decided = HealthSnapshot::from_states([HealthState::Up, HealthState::Down]);
    let published = compose(decided.clone(), &Effects::default(), |_| Vec::new());
    assert_eq!(published, decided);
}

#[test]
fn drains_and_failovers_apply_and_the_election_sees_them() {
    let decided = HealthSnapshot::from_states([HealthState::Up, HealthState::Up]);
    let effects = Effects {
        forced: vec![None, None],
        drained: vec![true, false],
        pins: vec![Some(PoolIndex(1))],
        dials: Vec::new(),
    };
    let mut seen = None;
    let published = compose(decided, &effects, |health| {
        seen = Some((
            health.drained(EndpointIndex(0)),
            health.drained(EndpointIndex(1)),
        ));
        vec![Some(EndpointIndex(1))]
    });
    assert_eq!(
        seen,
        Some((true, false)),
        "the election runs over the drains"
    );
    assert!(published.drained(EndpointIndex(0)));
    assert!(!published.drained(EndpointIndex(1)));
    assert_eq!(
        published.pin(crate::model::RecordIndex(0)),
        Some(PoolIndex(1))
    );
    assert_eq!(
        published.last_primary(crate::model::RecordIndex(0)),
        Some(EndpointIndex(1))
    );
}

#[test]
fn by_label_forced_wins_then_the_report_then_the_config_default() {
    let config = config();
    let known = |label: &str| (label == "eu/a").then(|| observed(HealthState::Down));
    let health = decided_by_label(&config, &[None, None, Some(HealthState::Down)], known);
    let got: Vec<_> = health.endpoints().to_vec();
    assert_eq!(
        got,
        [
            observed(HealthState::Down),
            // Not reported: the config forces it down.
            EndpointHealth {
                state: HealthState::Down,
                source: HealthSource::Forced
            },
            // Forced by an operator's override, whatever was reported.
            EndpointHealth {
                state: HealthState::Down,
                source: HealthSource::Forced
            },
        ]
    );
    let nothing = decided_by_label(&config, &[], |_| None);
    assert_eq!(nothing, HealthSnapshot::from_config(&config));
}

#[test]
fn a_decision_relabelled_publishes_the_same_health() {
    // What ctl and the mirror rebuild from a server's report by label is what the
    // server published from its board.
    let config = config();
    let decided = HealthSnapshot::from_health(vec![
        observed(HealthState::Down),
        EndpointHealth {
            state: HealthState::Down,
            source: HealthSource::Forced,
        },
        observed(HealthState::Up),
    ]);
    let effects = Effects {
        forced: vec![None; 3],
        drained: vec![false, false, true],
        pins: vec![Some(PoolIndex(0))],
        dials: Vec::new(),
    };
    let direct = compose(decided.clone(), &effects, |_| Vec::new());
    let relabelled = decided_by_label(&config, &effects.forced, |label| {
        let index = config.endpoint_by_label(label)?;
        decided.get(index).copied()
    });
    assert_eq!(compose(relabelled, &effects, |_| Vec::new()), direct);
}
