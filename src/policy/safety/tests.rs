//! The safety checks, table by table: what each refuses and what it lets through.

use super::*;
use crate::config::ConfigSource;
use crate::health::overrides::{Action, Change, OverrideSet, Target};
use crate::health::{EndpointHealth, HealthSource};

fn config(extra: &str) -> Config {
    let text = format!(
        r#"
version = 1
[pools.eu]
endpoints = [{{ address = "192.0.2.1", name = "a" }}, {{ address = "192.0.2.2", name = "b" }}]
[pools.us]
endpoints = [{{ address = "198.51.100.1", name = "c" }}]
[pools.spare]
endpoints = [{{ address = "198.51.100.9", name = "s" }}]
[pools.solo]
endpoints = [{{ address = "203.0.113.1", name = "x" }}]
[[records]]
name = "www.example."
type = "A"
policy = "failover"
pools = ["eu", "us"]
[[records]]
name = "solo.example."
type = "A"
policy = "failover"
pools = ["solo"]
{extra}
"#
    );
    match Config::load(ConfigSource::from_text(text, ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}"),
    }
}

/// The health with every endpoint in `down` down (by label), the rest up.
fn probed(config: &Config, down: &[&str]) -> Vec<EndpointHealth> {
    (0..config.endpoints.len())
        .map(|i| {
            let label = config.endpoint_label(EndpointIndex(i as u32));
            EndpointHealth {
                state: if down.contains(&label.as_str()) {
                    HealthState::Down
                } else {
                    HealthState::Up
                },
                source: HealthSource::Observed,
            }
        })
        .collect()
}

/// The health answers see with `set`'s overrides over `probes`.
fn seen(
    config: &Config,
    probes: &[EndpointHealth],
    set: &OverrideSet,
) -> (HealthSnapshot, Effects) {
    let effects = set.effects(config, 1);
    let endpoints = probes
        .iter()
        .zip(&effects.forced)
        .map(|(probe, forced)| match forced {
            Some(state) => EndpointHealth {
                state: *state,
                source: HealthSource::Forced,
            },
            None => *probe,
        })
        .collect();
    let health = HealthSnapshot::from_health(endpoints)
        .with_overrides(effects.drained.clone(), effects.pins.clone());
    (health, effects)
}

/// Checks making `changes` (in order) on top of `set`, with `down` probed down.
fn verdict(
    config: &Config,
    down: &[&str],
    set: &OverrideSet,
    changes: &[(Target, Action)],
) -> Result<(), SafetyError> {
    let probes = probed(config, down);
    let mut after_set = set.clone();
    for (target, action) in changes {
        after_set
            .apply(
                Change {
                    target: target.clone(),
                    action: Some(action.clone()),
                    by: "test".into(),
                    reason: "test".into(),
                    expires_in_ms: None,
                    allow_empty: false,
                },
                config,
                "s1",
                1,
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (before, effects_before) = seen(config, &probes, set);
    let (after, effects_after) = seen(config, &probes, &after_set);
    check(
        config,
        Proposed {
            before: &before,
            after: &after,
            effects_before: &effects_before,
            effects_after: &effects_after,
        },
    )
}

fn pool(name: &str) -> Target {
    Target::Pool(name.into())
}

fn endpoint(label: &str) -> Target {
    Target::Endpoint(label.into())
}

#[test]
fn a_change_that_leaves_a_healthy_pool_passes() {
    let config = config("");
    let none = OverrideSet::default();
    // The standby takes over.
    assert_eq!(
        verdict(&config, &[], &none, &[(pool("eu"), Action::Drain)]),
        Ok(())
    );
    // One endpoint of two.
    assert_eq!(
        verdict(
            &config,
            &[],
            &none,
            &[(endpoint("eu/a"), Action::ForceDown)]
        ),
        Ok(())
    );
    // A drain of a down endpoint (kept out once it recovers) while its pool serves.
    assert_eq!(
        verdict(
            &config,
            &["eu/a"],
            &none,
            &[(endpoint("eu/a"), Action::Drain)]
        ),
        Ok(())
    );
}

#[test]
fn taking_out_the_last_healthy_pool_is_refused_with_what_it_would_answer() {
    let config = config("");
    let none = OverrideSet::default();
    // The standby is down: draining the primary leaves no pool up; fail-open keeps
    // answering the drained endpoints, so the drain would change nothing.
    let refused = verdict(&config, &["us/c"], &none, &[(pool("eu"), Action::Drain)]);
    match &refused {
        Err(SafetyError::NoPoolUp {
            record,
            clients,
            pools,
            answer,
        }) => {
            assert_eq!(record, "www.example. A");
            assert_eq!(clients, "every client");
            assert_eq!(pools, "eu 0 of 1 usable, us 0 of 1 usable");
            assert_eq!(answer, "degraded: eu/a, eu/b (unchanged)");
        }
        other => panic!("{other:?}"),
    }
    // Both pools drained, all up: the same.
    let refused = verdict(
        &config,
        &[],
        &none,
        &[(pool("eu"), Action::Drain), (pool("us"), Action::Drain)],
    );
    assert!(
        matches!(&refused, Err(SafetyError::NoPoolUp { answer, .. }) if answer.contains("(unchanged)")),
        "{refused:?}"
    );
    // Forcing the last endpoint of a pool down: nothing would be answered.
    let refused = verdict(
        &config,
        &[],
        &none,
        &[(endpoint("solo/x"), Action::ForceDown)],
    );
    assert!(
        matches!(&refused, Err(SafetyError::NoPoolUp { record, answer, .. })
            if record == "solo.example. A" && answer.ends_with("nothing (NODATA)")),
        "{refused:?}"
    );
}

#[test]
fn an_empty_answer_or_a_change_fail_open_ignores_is_refused() {
    let config = config("");
    let none = OverrideSet::default();
    // Down by its probes, solo is answered by fail-open; forcing it down empties it.
    let refused = verdict(
        &config,
        &["solo/x"],
        &none,
        &[(endpoint("solo/x"), Action::ForceDown)],
    );
    assert_eq!(
        refused,
        Err(SafetyError::Empty {
            record: "solo.example. A".into(),
            clients: "every client".into()
        })
    );
    // Draining it changes nothing: fail-open answers it all the same.
    let refused = verdict(
        &config,
        &["solo/x"],
        &none,
        &[(endpoint("solo/x"), Action::Drain)],
    );
    match refused {
        Err(SafetyError::StillAnswered {
            outcome, endpoints, ..
        }) => {
            assert_eq!(outcome, "fail-open");
            assert_eq!(endpoints, "solo/x");
        }
        other => panic!("{other:?}"),
    }
    // During an outage, draining one endpoint fail-open then leaves out is a change.
    assert_eq!(
        verdict(
            &config,
            &["eu/a", "eu/b", "us/c"],
            &none,
            &[(endpoint("eu/a"), Action::Drain)]
        ),
        Ok(())
    );
}

#[test]
fn geo_records_are_checked_per_region() {
    let config = config(
        r#"
[regions.emea]
networks = ["192.0.2.0/24"]
[[records]]
name = "geo.example."
type = "A"
policy = "geo"
[records.geo]
emea = ["spare"]
default = ["us", "eu"]
"#,
    );
    let refused = verdict(
        &config,
        &[],
        &OverrideSet::default(),
        &[(pool("spare"), Action::Drain)],
    );
    assert!(
        matches!(&refused, Err(SafetyError::NoPoolUp { record, clients, .. })
            if record == "geo.example. A" && clients == "clients in emea"),
        "{refused:?}"
    );
}

#[test]
fn safety_rules_keep_enough_pools_in_service() {
    let text = r#"
version = 1
[pools.eu]
endpoints = [{ address = "192.0.2.1", name = "a" }]
[pools.us]
endpoints = [{ address = "198.51.100.1", name = "c" }]
[pools.spare]
endpoints = [{ address = "198.51.100.9", name = "s" }]
[[records]]
name = "api.example."
type = "A"
policy = "failover"
pools = ["eu", "us", "spare"]
[[safety]]
name = "one web region"
pools = ["eu", "us"]
min_in_service = 1
"#;
    let config = match Config::load(ConfigSource::from_text(text, ".")) {
        Ok((config, _)) => config,
        Err(e) => panic!("{e}"),
    };
    let none = OverrideSet::default();
    assert_eq!(
        verdict(&config, &[], &none, &[(pool("eu"), Action::Drain)]),
        Ok(())
    );
    // Both web pools out at once: api still answers (spare), but the rule refuses.
    let refused = verdict(
        &config,
        &[],
        &none,
        &[
            (pool("eu"), Action::Drain),
            (endpoint("us/c"), Action::ForceDown),
        ],
    );
    assert_eq!(
        refused,
        Err(SafetyError::Rule {
            rule: "one web region".into(),
            pools: "eu, us".into(),
            in_service: 0,
            min: 1
        })
    );
    // An outage does not count: us down by its probes is still in service.
    assert_eq!(
        verdict(&config, &["us/c"], &none, &[(pool("eu"), Action::Drain)]),
        Ok(())
    );
    // A rule already broken (by the configuration) lets changes through that do not
    // make it worse.
    let broken = Config::load(ConfigSource::from_text(
        text.replace(
            "endpoints = [{ address = \"192.0.2.1\", name = \"a\" }]",
            "endpoints = [{ address = \"192.0.2.1\", name = \"a\", weight = 0 }]",
        )
        .replace("min_in_service = 1", "min_in_service = 2"),
        ".",
    ))
    .map(|(c, _)| c)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        in_service(&broken, &broken.safety[0].pools, &none.effects(&broken, 1)),
        1
    );
    assert_eq!(
        verdict(&broken, &[], &none, &[(pool("spare"), Action::Drain)]),
        Ok(())
    );
    assert!(verdict(&broken, &[], &none, &[(pool("us"), Action::Drain)]).is_err());
}
