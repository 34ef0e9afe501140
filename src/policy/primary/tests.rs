//! Follow-the-primary (conflict hold / none, no primary, reload by label) and
//! failover gates (held, released, overridden by a manual failover), pure.

use super::*;
use crate::config::ConfigSource;
use crate::health::HealthSnapshot;
use crate::model::HealthState;
use crate::policy::{Outcome, RecordState, decide_record};

/// Endpoints: 0 db/a, 1 db/b; record 0 primary over db.
fn primary_config(on_conflict: &str, all_down: &str) -> Config {
    let text = format!(
        r#"version = 1
[pools.db]
endpoints = [{{ address = "10.0.0.1", name = "a" }}, {{ address = "10.0.0.2", name = "b" }}]
[[records]]
name = "db.example."
type = "A"
policy = "primary"
pools = ["db"]
on_conflict = "{on_conflict}"
all_down = "{all_down}"
"#
    );
    match Config::load(ConfigSource::from_text(text.clone(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn health(up: &[bool]) -> HealthSnapshot {
    HealthSnapshot::from_states(up.iter().map(|&u| {
        if u {
            HealthState::Up
        } else {
            HealthState::Down
        }
    }))
}

fn answer(config: &Config, health: &HealthSnapshot, last: Option<u32>) -> (Outcome, Vec<u32>) {
    let record = &config.records[0];
    let decision = decide_record(
        config,
        record,
        crate::policy::pools_for(record, None),
        RecordState {
            pin: None,
            last_primary: last.map(EndpointIndex),
        },
        health,
    );
    assert!(
        decision.candidates.len() <= 1,
        "never more than one primary"
    );
    (
        decision.outcome,
        decision.candidates.iter().map(|c| c.endpoint.0).collect(),
    )
}

#[test]
fn one_claim_is_answered_and_becomes_the_agreed_primary() {
    let config = primary_config("hold", "fail-open");
    let h = health(&[true, false]);
    assert_eq!(
        elect(&config, &[PoolIndex(0)], &h),
        Election::Agreed(EndpointIndex(0))
    );
    assert_eq!(
        answer(&config, &h, None),
        (
            Outcome::Primary {
                endpoint: EndpointIndex(0)
            },
            vec![0]
        )
    );
    let mut memory = PrimaryMemory::default();
    let changes = memory.observe(&config, &h);
    assert_eq!(
        changes,
        vec![PrimaryChange::Agreed {
            record: RecordIndex(0),
            from: None,
            to: "db/a".into()
        }]
    );
    assert_eq!(memory.indices(&config), vec![Some(EndpointIndex(0))]);
    // Promotion: a stops claiming, b claims → b.
    let h = health(&[false, true]);
    assert_eq!(answer(&config, &h, Some(0)).1, vec![1]);
    memory.observe(&config, &h);
    assert_eq!(memory.indices(&config), vec![Some(EndpointIndex(1))]);
}

#[test]
fn a_conflict_holds_the_last_agreed_primary_and_never_answers_both() {
    let config = primary_config("hold", "fail-open");
    let mut memory = PrimaryMemory::default();
    memory.observe(&config, &health(&[true, false]));
    let both = health(&[true, true]);
    let changes = memory.observe(&config, &both);
    assert_eq!(
        changes,
        vec![PrimaryChange::ConflictBegan {
            record: RecordIndex(0),
            claimants: vec!["db/a".into(), "db/b".into()],
            held: Some("db/a".into()),
        }]
    );
    assert!(memory.in_conflict(&config, RecordIndex(0)));
    // Still a: a conflict does not change the agreed primary.
    assert_eq!(memory.indices(&config), vec![Some(EndpointIndex(0))]);
    assert_eq!(
        answer(&config, &both, Some(0)),
        (
            Outcome::Conflict {
                held: Some(EndpointIndex(0))
            },
            vec![0]
        )
    );
    // A conflict with nothing agreed before: NODATA, not both.
    assert_eq!(
        answer(&config, &both, None),
        (Outcome::Conflict { held: None }, vec![])
    );
    // Observing the conflict again changes nothing; its end is reported once.
    assert!(memory.observe(&config, &both).is_empty());
    let after = memory.observe(&config, &health(&[false, true]));
    assert_eq!(
        after,
        vec![
            PrimaryChange::ConflictEnded {
                record: RecordIndex(0)
            },
            PrimaryChange::Agreed {
                record: RecordIndex(0),
                from: Some("db/a".into()),
                to: "db/b".into()
            }
        ]
    );
}

#[test]
fn on_conflict_none_fails_closed() {
    let config = primary_config("none", "fail-open");
    assert_eq!(
        answer(&config, &health(&[true, true]), Some(0)),
        (Outcome::Conflict { held: None }, vec![])
    );
}

#[test]
fn no_claim_follows_the_all_down_mode() {
    let none = health(&[false, false]);
    let open = primary_config("hold", "fail-open");
    assert_eq!(
        answer(&open, &none, Some(1)),
        (Outcome::FailOpen, vec![1]),
        "fail-open keeps the last agreed primary"
    );
    assert_eq!(answer(&open, &none, None), (Outcome::NoData, vec![]));
    let closed = primary_config("hold", "nodata");
    assert_eq!(answer(&closed, &none, Some(1)), (Outcome::NoData, vec![]));
}

#[test]
fn drained_endpoints_do_not_claim() {
    let config = primary_config("hold", "fail-open");
    let h = health(&[true, true]).with_overrides(vec![true, false], Vec::new());
    assert_eq!(
        elect(&config, &[PoolIndex(0)], &h),
        Election::Agreed(EndpointIndex(1))
    );
}

#[test]
fn memory_is_kept_by_label_across_a_reload() {
    let config = primary_config("hold", "fail-open");
    let mut memory = PrimaryMemory::default();
    memory.observe(&config, &health(&[false, true]));
    // The same record with the endpoints in the other order: b is index 0 now.
    let text = r#"version = 1
[pools.db]
endpoints = [{ address = "10.0.0.2", name = "b" }, { address = "10.0.0.1", name = "a" }]
[[records]]
name = "db.example."
type = "A"
policy = "primary"
pools = ["db"]
"#;
    let (reloaded, _) = Config::load(ConfigSource::from_text(text, ".")).unwrap();
    assert_eq!(memory.indices(&reloaded), vec![Some(EndpointIndex(0))]);
    let restored = PrimaryMemory::restored(memory.agreed().clone());
    assert_eq!(restored.indices(&reloaded), vec![Some(EndpointIndex(0))]);
}

/// Endpoints: 0 east/e1, 1 west/w1, 2 west-db/w-db; pools east, west; west gated.
fn gated_config(all_down: &str) -> Config {
    let text = format!(
        r#"version = 1
[pools.east]
endpoints = [{{ address = "10.0.1.1", name = "e1" }}]
[pools.west]
endpoints = [{{ address = "10.0.2.1", name = "w1" }}]
[pools.west-db]
endpoints = [{{ address = "10.0.2.9", name = "w-db" }}]
[[records]]
name = "app.example."
type = "A"
policy = "failover"
pools = ["east", "west"]
all_down = "{all_down}"
gates = {{ west = "west-db" }}
"#
    );
    match Config::load(ConfigSource::from_text(text.clone(), ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn gated(config: &Config, up: &[bool], pin: Option<u32>) -> crate::policy::Decision {
    let record = &config.records[0];
    decide_record(
        config,
        record,
        crate::policy::pools_for(record, None),
        RecordState {
            pin: pin.map(PoolIndex),
            last_primary: None,
        },
        &health(up),
    )
}

#[test]
fn a_closed_gate_holds_the_standby() {
    let config = gated_config("fail-open");
    let west = PoolIndex(1);
    // East up: east serves whatever the gate says.
    let d = gated(&config, &[true, true, false], None);
    assert_eq!(
        d.outcome,
        Outcome::Healthy {
            pool: Some(PoolIndex(0))
        }
    );
    // East down, west's database within max_lag (gate pool up): west serves.
    let d = gated(&config, &[false, true, true], None);
    assert_eq!(d.outcome, Outcome::Healthy { pool: Some(west) });
    assert!(!d.pools[1].held());
    // East down, west's database too far behind: west is held; fail-open stays on
    // east (the current pool), never on west.
    let d = gated(&config, &[false, true, false], None);
    assert!(d.pools[1].held());
    assert!(!d.pools[1].up);
    assert_eq!(d.outcome, Outcome::FailOpen);
    assert_eq!(
        d.candidates.iter().map(|c| c.endpoint).collect::<Vec<_>>(),
        vec![EndpointIndex(0)]
    );
    // Not even degraded answers go to a held pool.
    let nodata = gated_config("nodata");
    let d = gated(&nodata, &[false, true, false], None);
    assert_eq!(d.outcome, Outcome::NoData);
    assert!(d.candidates.is_empty());
}

#[test]
fn a_manual_failover_overrides_the_gate() {
    let config = gated_config("fail-open");
    let west = PoolIndex(1);
    let d = gated(&config, &[false, true, false], Some(west.0));
    assert_eq!(d.outcome, Outcome::Healthy { pool: Some(west) });
    let gate = d.pools[0].gate.expect("west is first when pinned");
    assert!(gate.open && gate.overridden);
}

#[test]
fn endpoints_only_assumed_up_claim_nothing() {
    let config = primary_config("hold", "fail-open");
    // Start-up: nothing probed yet, every endpoint assumed up.
    let assumed = HealthSnapshot::from_config(&config);
    assert_eq!(
        elect(&config, &[PoolIndex(0)], &assumed),
        Election::NoPrimary
    );
    let mut memory = PrimaryMemory::default();
    assert!(
        memory.observe(&config, &assumed).is_empty(),
        "no conflict at start-up"
    );
    // The saved agreed primary is answered until a probe decides.
    assert_eq!(
        answer(&config, &assumed, Some(1)),
        (Outcome::FailOpen, vec![1])
    );
}
